//! Paths to the built binary and plugins, and a command runner.

use std::path::PathBuf;
use std::process::{Command, Output};

fn target_subdir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).join(default),
        PathBuf::from,
    )
}

/// The directory holding the first-party plugins.
pub(crate) fn plugin_dir() -> PathBuf {
    target_subdir("VCON_PLUGIN_DIR", "plugins")
}

/// A first-party plugin file.
pub(crate) fn plugin(name: &str) -> PathBuf {
    let path = plugin_dir().join(format!("libvcon_storage_{name}.so"));
    assert!(
        path.is_file(),
        "{} missing: run `cargo xtask test`",
        path.display()
    );
    path
}

/// A test fixture plugin file.
pub(crate) fn test_plugin(name: &str) -> PathBuf {
    let path = target_subdir("VCON_TEST_PLUGIN_DIR", "test-plugins")
        .join(format!("libtest_plugin_{name}.so"));
    assert!(
        path.is_file(),
        "{} missing: run `cargo xtask test`",
        path.display()
    );
    path
}

/// The `vcon-host` binary under test, isolated from the developer's VCON_PLUGIN_PATH.
pub(crate) fn vcon_host() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcon-host"));
    for var in [
        "VCON_PLUGIN_PATH",
        "CONSERVER_CONFIG_FILE",
        "REDIS_URL",
        "CONSERVER_WORKERS",
        "VCON_REDIS_EXPIRY",
        "VCON_DLQ_EXPIRY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command, answering (exit code, stdout + stderr).
pub(crate) fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code(), text)
}

/// The shared test vCons (`../shared/vcons`, or `VCON_TEST_DATA`).
pub(crate) fn shared_vcons() -> PathBuf {
    let dir = std::env::var_os("VCON_TEST_DATA").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vcons")),
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "{} missing: the shared test vCons must sit beside the repository",
        dir.display()
    );
    dir
}

/// A scratch directory with a config like the default one, every path inside it.
pub(crate) struct Scratch {
    pub(crate) dir: tempfile::TempDir,
}

impl Scratch {
    /// The default config's chain (tag link, sqlite and file storages) in a fresh directory.
    pub(crate) fn default_chain() -> Self {
        Self::with_config(
            r#"
host:
  broker: ./data/broker.sqlite
  workers: 2
  batch_size: 32
  retry: { max_attempts: 3, initial_backoff: 10ms, max_backoff: 50ms }
storages:
  sqlite:
    module: storage.sqlite
    options: { path: ./data/vcons.sqlite }
  file:
    module: storage.file
    options: { path: ./data/vcons, organize_by_date: true, file_permissions: 0o644 }
links:
  tag:
    module: links.tag
    options: { tags: [vcon-host] }
chains:
  main:
    links: [tag]
    storages: [sqlite, file]
    ingress_lists: [default_ingress]
    egress_lists: [default_egress]
    enabled: 1
"#,
        )
    }

    /// A scratch directory holding `config.yml` with `text`.
    pub(crate) fn with_config(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yml"), text).unwrap();
        Self { dir }
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `vcon-host --config this/config.yml --plugin-dir target/plugins ...`
    pub(crate) fn host(&self) -> Command {
        let mut cmd = vcon_host();
        cmd.arg("--config")
            .arg(self.path().join("config.yml"))
            .arg("--plugin-dir")
            .arg(plugin_dir())
            .current_dir(self.path());
        cmd
    }

    /// Starts `vcon-host run` in the background, its API on a free port (tests run in
    /// parallel, so none may take the default 8000).
    pub(crate) fn spawn_run(&self) -> std::process::Child {
        self.host()
            .args(["run", "--bind", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap()
    }

    /// Rows in the sqlite storage's table.
    pub(crate) fn sqlite_rows(&self) -> usize {
        let path = self.path().join("data/vcons.sqlite");
        if !path.exists() {
            return 0;
        }
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM vcons", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0) as usize
    }

    /// `.json` files under the file storage's directory (its index excluded).
    pub(crate) fn stored_files(&self) -> Vec<PathBuf> {
        self.stored_files_in("data/vcons")
    }

    /// The `.json` files under a directory of the scratch space (a file storage's `path`).
    pub(crate) fn stored_files_in(&self, dir: &str) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    walk(&path, out);
                } else if name.ends_with(".json") {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path().join(dir), &mut out);
        out
    }

    /// Waits until `done()` or the deadline, polling.
    pub(crate) fn wait_for(&self, what: &str, secs: u64, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Stops a `vcon-host run` child with SIGTERM and checks it exits cleanly.
pub(crate) fn stop(mut child: std::process::Child) {
    // SAFETY-free: the `kill` command sends the signal.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "vcon-host run exited with {status}");
}

/// The document without the tag the default chain's link adds (`vcon-host:vcon-host`), to
/// compare with what was ingested: either a new `tags` attachment at the end, or one more entry
/// in a `tags` attachment the input already had (whose body may be a list or, as in cat1, a
/// JSON string holding one).
pub(crate) fn without_added_tags(
    mut doc: serde_json::Value,
    original: &serde_json::Value,
) -> serde_json::Value {
    let added = serde_json::json!("vcon-host:vcon-host");
    let before: Vec<serde_json::Value> = original
        .get("attachments")
        .and_then(|a| a.as_array())
        .cloned()
        .unwrap_or_default();
    let is_tags = |a: &serde_json::Value| {
        a.get("purpose")
            .or_else(|| a.get("type"))
            .and_then(|p| p.as_str())
            == Some("tags")
    };
    let Some(list) = doc.get_mut("attachments").and_then(|a| a.as_array_mut()) else {
        return doc;
    };
    if let Some(i) = before.iter().position(is_tags) {
        let body_of = |a: &serde_json::Value| -> Vec<serde_json::Value> {
            match &a["body"] {
                serde_json::Value::String(text) => serde_json::from_str(text).unwrap(),
                serde_json::Value::Array(items) => items.clone(),
                _ => Vec::new(),
            }
        };
        let mut expected = body_of(&before[i]);
        if !expected.contains(&added) {
            expected.push(added);
        }
        assert_eq!(
            body_of(&list[i]),
            expected,
            "the link adds its tag to the existing attachment"
        );
        list[i]["body"] = before[i]["body"].clone();
    } else if let Some(i) = list.iter().position(is_tags).filter(|i| *i >= before.len()) {
        let removed = list.remove(i);
        assert_eq!(removed["body"], serde_json::json!([added]));
        if list.is_empty() && original.get("attachments").is_none() {
            doc.as_object_mut().unwrap().remove("attachments");
        }
    }
    doc
}

/// `json` without the whitespace between its tokens, one byte at a time: what the host stores
/// and answers for a posted vCon unless `host.keep_whitespace` is set. Written out here, apart
/// from the host's SIMD code, so the tests check that code against something else.
pub(crate) fn without_whitespace(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        out.push(byte);
    }
    out
}
