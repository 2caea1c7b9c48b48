//! Building plugins and the host, and running tests and benchmarks on them.

use std::env::consts::{DLL_EXTENSION, DLL_PREFIX};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Where `build-plugins` puts first-party plugins (also on the host's default search path).
pub(crate) fn plugin_dir() -> PathBuf {
    target_dir().join("plugins")
}

/// Where the deliberately broken plugins the tests need are put.
pub(crate) fn test_plugin_dir() -> PathBuf {
    target_dir().join("test-plugins")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

pub(crate) fn run_command(cmd: &mut Command) -> Result<()> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("xtask: running {shown}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// The package names of the crates in `dir` whose names start with `prefix`, sorted.
fn packages_in(dir: &Path, prefix: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && entry.path().join("Cargo.toml").is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The `[package] name` of the crate in `dir` (the first `name = "..."` of its manifest).
fn package_name(dir: &Path) -> Result<String> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("name"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no package name", manifest.display()))
}

/// The file a plugin crate's cdylib is built to, from its `[lib] name`.
fn built_library(profile_dir: &Path, lib_name: &str) -> PathBuf {
    profile_dir.join(format!(
        "{}{lib_name}.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    ))
}

/// Copies `from` to `dir/file_name` through a temporary file and a rename, so a process that
/// has the old library mapped keeps a consistent file (overwriting a loaded `.so` in place can
/// crash it).
fn install(from: &Path, dir: &Path, file_name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let dest = dir.join(file_name);
    let tmp = dir.join(format!(".{file_name}.tmp"));
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, &dest)?;
    Ok(dest)
}

/// Builds every crate under `plugins/` in release and installs it into `target/plugins/`.
pub(crate) fn build_plugins() -> Result<Vec<PathBuf>> {
    let dirs = packages_in(&root().join("plugins"), "")?;
    let mut cmd = cargo();
    cmd.args(["build", "--release"]);
    for dir in &dirs {
        cmd.args(["-p", &package_name(&root().join("plugins").join(dir))?]);
    }
    run_command(&mut cmd)?;
    let release = target_dir().join("release");
    let mut installed = Vec::new();
    for dir in &dirs {
        // The library is named after the directory (`plugins/redis` → `vcon_storage_redis`);
        // the package may differ where a dependency already has the name (`redis`).
        let lib_name = format!("vcon_storage_{}", dir.replace('-', "_"));
        let built = built_library(&release, &lib_name);
        let file_name = built
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        installed.push(install(&built, &plugin_dir(), &file_name)?);
    }
    for path in &installed {
        describe(path)?;
    }
    eprintln!(
        "xtask: {} plugins in {}",
        installed.len(),
        plugin_dir().display()
    );
    Ok(installed)
}

/// Loads a built plugin through the real loader and prints name, version, ABI and file.
fn describe(path: &Path) -> Result<()> {
    let library = plugin_loader::PluginLibrary::load(path, None)
        .with_context(|| format!("the plugin just built does not load: {}", path.display()))?;
    let meta = library.meta();
    println!(
        "{:<14} {:<8} abi {:<6} {:<40} {}",
        meta.name,
        meta.version,
        meta.abi_version,
        meta.capabilities.to_string(),
        path.display()
    );
    Ok(())
}

/// Builds the deliberately broken plugins the loader tests need into `target/test-plugins/`.
fn build_test_plugins() -> Result<()> {
    let crates = root().join("crates");
    let packages = packages_in(&crates, "test-plugin-")?;
    let release = target_dir().join("release");
    for package in packages {
        // The foreign fixture is one crate built once per feature, each a different way of
        // being the wrong library.
        let variants: &[(&str, Option<&str>)] = if package == "test-plugin-foreign" {
            &[
                ("abi_v2", Some("abi-v2")),
                ("layout_mismatch", Some("layout-mismatch")),
                ("other_program", Some("other-program")),
            ]
        } else {
            &[("", None)]
        };
        for (suffix, feature) in variants {
            let mut cmd = cargo();
            cmd.args(["build", "--release", "-p", &package]);
            if let Some(feature) = feature {
                cmd.args(["--features", feature]);
            }
            run_command(&mut cmd)?;
            let lib_name = package.replace('-', "_");
            let built = built_library(&release, &lib_name);
            let out_name = if suffix.is_empty() {
                format!("{DLL_PREFIX}{lib_name}.{DLL_EXTENSION}")
            } else {
                format!("{DLL_PREFIX}{lib_name}_{suffix}.{DLL_EXTENSION}")
            };
            let dest = install(&built, &test_plugin_dir(), &out_name)?;
            eprintln!("xtask: test plugin {}", dest.display());
        }
    }
    Ok(())
}

/// Builds everything the tests load, then runs the whole workspace's tests.
pub(crate) fn test(packages: &[String], extra: &[String]) -> Result<()> {
    install_test_services()?;
    build_plugins()?;
    build_test_plugins()?;
    // The tests run in release: the plugins are release builds, so the shared dependencies are
    // compiled once, not once per profile (on a 2-core machine that halves the build).
    // The host binary is run by the CLI tests (`plugins check` isolates plugins in a child).
    run_command(cargo().args(["build", "--release", "-p", "vcon-host"]))?;
    let mut cmd = cargo();
    // --no-fail-fast: one run shows every failing test binary, not just the first.
    cmd.args(["test", "--release", "--no-fail-fast"]);
    if packages.is_empty() {
        cmd.args(["--workspace", "--exclude", "xtask"]);
    }
    for p in packages {
        cmd.args(["-p", p]);
    }
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    cmd.env("VCON_PLUGIN_DIR", plugin_dir())
        .env("VCON_TEST_PLUGIN_DIR", test_plugin_dir());
    run_command(&mut cmd)
}

/// Installs what the tests need beyond the services the machine runs: the S3-compatible server
/// (moto, from PyPI) the object-store tests start on loopback. A failure is a warning (those
/// tests then skip loudly) unless `VCON_REQUIRE_SERVICES=1`, as in CI.
fn install_test_services() -> Result<()> {
    let script = root().join("plugins/object-store/scripts/install-s3-server.sh");
    match run_command(Command::new("bash").arg(&script)) {
        Ok(()) => Ok(()),
        Err(err) if std::env::var_os("VCON_REQUIRE_SERVICES").is_some_and(|v| v == "1") => {
            Err(err.context("installing the S3-compatible test server"))
        }
        Err(err) => {
            eprintln!("xtask: WARNING: {err:#}; the object-store tests will skip");
            Ok(())
        }
    }
}

/// Builds everything and starts the host on `config.yml`.
pub(crate) fn run(extra: &[String]) -> Result<()> {
    build_plugins()?;
    run_command(cargo().args(["build", "--release", "-p", "vcon-host"]))?;
    let host = target_dir().join("release").join("vcon-host");
    let mut cmd = Command::new(host);
    cmd.args(["run", "--config", "config.yml"])
        .args(extra)
        .env("VCON_PLUGIN_PATH", plugin_dir());
    run_command(&mut cmd)
}

/// Runs a criterion suite with the plugins it measures freshly built.
pub(crate) fn bench(suite: &str, extra: &[String]) -> Result<()> {
    let (package, bench) = match suite {
        "abi" => ("conformance", "abi"),
        "vcon" => ("vcon", "parse"),
        "ingest" => ("vcon-host", "ingest"),
        "broker" => ("vcon-host", "broker"),
        "api" => ("vcon-host", "api"),
        "postgres" => ("postgres", "postgres"),
        "object-store" => ("object-store", "object_store"),
        "wal-vfs" => ("sqlite-wal-vfs", "commit"),
        other => bail!(
            "unknown benchmark suite `{other}`: expected abi, vcon, ingest, api, broker, postgres, object-store or wal-vfs"
        ),
    };
    if suite == "object-store" {
        install_test_services()?;
    }
    build_plugins()?;
    let mut cmd = cargo();
    cmd.args(["bench", "-p", package, "--bench", bench]);
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    cmd.env("VCON_PLUGIN_DIR", plugin_dir());
    run_command(&mut cmd)
}
