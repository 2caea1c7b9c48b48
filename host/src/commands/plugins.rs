//! `vcon-host plugins list|check`: what plugins are installed, and whether one honours the
//! storage contract.
//!
//! `check` runs the conformance suite in a child process (this same binary, with a hidden
//! flag), because a plugin is native code: a segfault or an abort inside it would take the
//! checker down with it. The child announces each check before it starts, so when it dies the
//! parent can say in which check.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, Result};
use plugin_loader::{PluginLibrary, SearchPath};

/// The marker the child prints before each check (a line nobody else prints).
const PROGRESS: &str = "\u{1}vcon-host-check-progress ";

/// Lists every plugin on the search path: name, version, ABI, capabilities, file. Loading a
/// plugin runs its code, so only files on the search path are listed. Answers whether every file
/// loaded.
pub fn list(search: &SearchPath, out: &mut dyn Write) -> Result<bool> {
    let candidates = search.candidates();
    if candidates.is_empty() {
        writeln!(
            out,
            "no plugins found in {}: build them with `cargo xtask build-plugins` or add a directory with --plugin-dir",
            search
                .dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        return Ok(false);
    }
    writeln!(
        out,
        "{:<14} {:<9} {:<6} {:<52} FILE",
        "NAME", "VERSION", "ABI", "CAPABILITIES"
    )?;
    let mut all_loaded = true;
    for candidate in candidates {
        match PluginLibrary::load(&candidate.path, None) {
            Ok(library) => {
                let meta = library.meta();
                writeln!(
                    out,
                    "{:<14} {:<9} {:<6} {:<52} {}",
                    meta.name,
                    meta.version,
                    meta.abi_version,
                    meta.capabilities.to_string(),
                    candidate.path.display()
                )?;
            }
            Err(err) => {
                all_loaded = false;
                writeln!(out, "{:<14} error: {err}", candidate.name)?;
            }
        }
    }
    Ok(all_loaded)
}

/// What `plugins check` was asked to do.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    /// The plugin file.
    pub file: PathBuf,
    /// The storage's options as JSON; `None` means defaults, with a fresh temporary location
    /// for plugins that store under a `path`.
    pub options: Option<String>,
    /// Allow checks that remove everything (always allowed on a fresh temporary location).
    pub destructive: bool,
}

/// Runs the conformance suite on a plugin in a child process and prints its report. Answers
/// whether the plugin passed.
pub fn check(request: &CheckRequest, out: &mut dyn Write) -> Result<bool> {
    if let Some(options) = &request.options {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(options)
            .with_context(|| format!("--options must be a JSON object, got `{options}`"))?;
    }
    let scratch = tempfile::Builder::new()
        .prefix("vcon-plugin-check-")
        .tempdir()
        .context("cannot create a temporary directory for the check")?;
    let exe = std::env::current_exe().context("cannot find this binary to run the check")?;
    let mut cmd = Command::new(exe);
    cmd.args(["plugins", "check", "--child-scratch"])
        .arg(scratch.path())
        .arg(&request.file)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(options) = &request.options {
        cmd.args(["--options", options]);
    }
    if request.destructive {
        cmd.arg("--destructive");
    }
    let mut child = cmd
        .spawn()
        .context("cannot start the checking child process")?;
    let mut last_check = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading the child's report")?;
            match line.strip_prefix(PROGRESS) {
                Some(check) => last_check = Some(check.to_owned()),
                None => writeln!(out, "{line}")?,
            }
        }
    }
    let status = child
        .wait()
        .context("waiting for the checking child process")?;
    if status.success() {
        return Ok(true);
    }
    if let Some(death) = describe_death(status) {
        writeln!(
            out,
            "{}: plugin {death} during check `{}`; in a running host this would have ended the \
             process: fix the plugin before deploying it",
            request.file.display(),
            last_check.as_deref().unwrap_or("load")
        )?;
    }
    Ok(false)
}

/// Describes how the child died, or `None` when it exited normally with a failing report.
fn describe_death(status: ExitStatus) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return Some(format!(
                "crashed with {} (signal {signal})",
                signal_name(signal)
            ));
        }
    }
    match status.code() {
        Some(1) => None,
        Some(code) => Some(format!("ended the process with exit status {code}")),
        None => Some("ended the process abnormally".to_owned()),
    }
}

#[cfg(unix)]
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        _ => "a signal",
    }
}

/// The child's side: runs the suite in this process and prints the report. Exit status 0 when
/// it passed, 1 when it did not.
pub fn check_in_child(request: &CheckRequest, scratch: &Path) -> Result<bool> {
    let mut destructive = request.destructive;
    let options = match &request.options {
        Some(options) => serde_json::from_str(options)?,
        None => {
            // Defaults, but never the plugin's default location (it may hold real data): a
            // plugin that stores under `path` gets the fresh scratch directory instead.
            let defaults = PluginLibrary::load(&request.file, None)
                .map(|library| library.meta().option_defaults.clone())
                .unwrap_or_default();
            match defaults.get("path").and_then(|p| p.as_str()) {
                Some(default_path) => {
                    destructive = true;
                    serde_json::json!({ "path": scratch_location(scratch, default_path) })
                }
                None => serde_json::json!({}),
            }
        }
    };
    let suite = conformance::Suite::new(&request.file)
        .options(options)
        .destructive(destructive);
    let mut stdout = std::io::stdout();
    let report = suite.run_with_progress(&mut |name| {
        // Flushed before the check runs, so the parent knows where a crash happened.
        let _ = writeln!(stdout, "{PROGRESS}{name}");
        let _ = stdout.flush();
    });
    println!("{report}");
    Ok(report.passed())
}

/// A default `path` with an extension is a file (a database): keep its name inside scratch.
fn scratch_location(scratch: &Path, default_path: &str) -> PathBuf {
    match Path::new(default_path).file_name() {
        Some(name) if Path::new(name).extension().is_some() => scratch.join(name),
        _ => scratch.to_path_buf(),
    }
}
