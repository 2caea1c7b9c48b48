//! Finding the plugin and the server, fresh key prefixes, a direct connection to look at what
//! the plugin wrote, a private redis-server, and the test documents.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plugin_loader::{CallError, LoadError, PluginLibrary, StorageInstance, VconRecord};
use serde_json::{json, Value};

/// The built plugin file.
pub(crate) fn plugin_path() -> PathBuf {
    conformance::test_data::built_plugin("redis")
}

/// The loaded plugin.
pub(crate) fn library() -> &'static PluginLibrary {
    PluginLibrary::load(&plugin_path(), None).unwrap()
}

/// The database the tests use: `VCON_TEST_REDIS_URL`, by default logical database 11 of the
/// machine's own server. Nothing else in it is touched.
pub(crate) fn url() -> String {
    std::env::var("VCON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/11".to_owned())
}

fn require_services() -> bool {
    std::env::var("VCON_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// Says loudly that a test is skipped, or fails it under `VCON_REQUIRE_SERVICES=1`.
pub(crate) fn skip(message: &str) {
    if require_services() {
        panic!("{message} (VCON_REQUIRE_SERVICES=1, so this is a failure)");
    }
    eprintln!("\n*** SKIPPED: {message} ***\n");
}

/// The server, when it answers; `None` (after saying so loudly) when it does not.
pub(crate) fn server() -> Option<Server> {
    if Direct::try_connect(&url()).is_ok() {
        Some(Server)
    } else {
        skip(&format!(
            "Redis not reachable at {} — start it with: redis-server --daemonize yes",
            url()
        ));
        None
    }
}

/// Access to the test database.
pub(crate) struct Server;

impl Server {
    /// Options for a storage under `prefix` in the test database.
    pub(crate) fn options(&self, prefix: &Prefix) -> Value {
        json!({ "redis_url": url(), "prefix": prefix.name })
    }

    /// A prefix no other test (or run) uses, whose keys are removed when the guard goes.
    pub(crate) fn fresh_prefix(&self) -> Prefix {
        Prefix::new(
            &url(),
            &format!("vcon_test_{}", uuid::Uuid::new_v4().simple()),
        )
    }
}

/// A test's own key prefix.
pub(crate) struct Prefix {
    pub(crate) name: String,
    url: String,
}

impl Prefix {
    /// `name` in the database at `url`, cleaned up at the end.
    pub(crate) fn new(url: &str, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
        }
    }

    /// The key of `uuid` under this prefix.
    pub(crate) fn key(&self, uuid: &str) -> String {
        format!("{}:{uuid}", self.name)
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        if let Ok(mut direct) = Direct::try_connect(&self.url) {
            let keys = direct.keys_under(&self.name);
            if !keys.is_empty() {
                let _ = redis::cmd("DEL").arg(&keys).query::<u64>(&mut direct.conn);
            }
        }
    }
}

/// Merges `extra` into `options`.
pub(crate) fn with(mut options: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (options.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            base.insert(key.clone(), value.clone());
        }
    }
    options
}

/// A storage opened with `options`.
pub(crate) fn open(options: &Value) -> StorageInstance {
    library()
        .open(&options.to_string())
        .unwrap_or_else(|err| panic!("opening with {options}: {err}"))
}

/// The error of opening with `options`, which must fail.
pub(crate) fn open_err(options: &Value) -> CallError {
    match library().open(&options.to_string()) {
        Ok(_) => panic!("opening with {options} succeeded"),
        Err(LoadError::OpenFailed { error, .. }) => error,
        Err(other) => panic!("opening with {options}: not the plugin's refusal: {other}"),
    }
}

/// A plain connection beside the plugin, to see what it wrote.
pub(crate) struct Direct {
    pub(crate) conn: redis::Connection,
}

impl Direct {
    pub(crate) fn connect() -> Self {
        Self::try_connect(&url()).unwrap()
    }

    pub(crate) fn try_connect(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        redis::cmd("PING").query::<()>(&mut conn)?;
        Ok(Self { conn })
    }

    /// Every key under `prefix` (`{prefix}:*`), by SCAN.
    pub(crate) fn keys_under(&mut self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", escape_glob(prefix)))
                .arg("COUNT")
                .arg(1000)
                .query(&mut self.conn)
                .unwrap();
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        keys
    }

    pub(crate) fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET").arg(key).query(&mut self.conn).unwrap()
    }

    pub(crate) fn ttl(&mut self, key: &str) -> i64 {
        redis::cmd("TTL").arg(key).query(&mut self.conn).unwrap()
    }

    pub(crate) fn type_of(&mut self, key: &str) -> String {
        redis::cmd("TYPE").arg(key).query(&mut self.conn).unwrap()
    }

    pub(crate) fn set(&mut self, key: &str, value: &[u8], expires: Option<u64>) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(seconds) = expires {
            cmd.arg("EX").arg(seconds);
        }
        cmd.query::<()>(&mut self.conn).unwrap();
    }
}

/// `text` with Redis's glob characters escaped, so a pattern matches it literally.
pub(crate) fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A port on loopback where nothing listens.
pub(crate) fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// A redis-server of a test's own, on a free port, with its append-only file (fsynced on every
/// write) in a temporary directory, so it can be killed and started again without touching the
/// machine's server, and keeps every acknowledged write across the restart.
pub(crate) struct OwnServer {
    child: Option<Child>,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl OwnServer {
    /// Starts one; `None` (after saying so loudly) when redis-server is not installed.
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`OwnServer::start`] with more `redis-server` arguments (`--requirepass`, ...).
    pub(crate) fn start_with(extra: &[&str]) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            skip("redis-server is not on PATH, so the restart tests cannot run their own server");
            return None;
        }
        let mut server = Self {
            child: None,
            port: closed_port(),
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.run();
        Some(server)
    }

    /// Its URL (database 0: it is the test's own).
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the process and waits until it answers.
    pub(crate) fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args([
                "--logfile",
                &self.dir.path().join("redis.log").display().to_string(),
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the test's redis-server on port {} did not start: {}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers on its port (a `NOAUTH` answer counts: it is up).
    pub(crate) fn answers(&self) -> bool {
        match Direct::try_connect(&self.url()) {
            Ok(_) => true,
            Err(err) => {
                err.code() == Some("NOAUTH") || err.kind() == redis::ErrorKind::AuthenticationFailed
            }
        }
    }

    /// Kills the process (SIGKILL: no goodbye to its clients) and waits for it to end.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A vCon document with the fields the host extracts.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub(crate) uuid: String,
    pub(crate) json: Vec<u8>,
}

impl Doc {
    /// A document read from a file.
    pub(crate) fn from_file(path: &Path) -> Self {
        Self::from_json(std::fs::read(path).unwrap())
    }

    /// A document from its JSON.
    pub(crate) fn from_json(json: Vec<u8>) -> Self {
        let value: Value = serde_json::from_slice(&json).unwrap();
        let uuid = value["uuid"].as_str().unwrap().to_owned();
        Self { uuid, json }
    }

    /// A small synthetic document with a fresh uuid.
    pub(crate) fn synthetic() -> Self {
        let uuid = new_uuid();
        Self::from_json(
            json!({
                "uuid": uuid,
                "vcon": "0.0.1",
                "created_at": "2024-01-02T03:04:05Z",
                "parties": [{"tel": "+15551234567", "name": "Ann"}],
                "unknown_key_kept": {"x": [1, 2, 3]},
            })
            .to_string()
            .into_bytes(),
        )
    }

    /// This document under another uuid (in the JSON too).
    pub(crate) fn with_uuid(&self, uuid: &str) -> Self {
        let text = String::from_utf8(self.json.clone()).unwrap();
        Self {
            uuid: uuid.to_owned(),
            json: text.replace(&self.uuid, uuid).into_bytes(),
        }
    }

    /// The record the host passes to the plugin.
    pub(crate) fn record(&self) -> VconRecord<'_> {
        VconRecord::new(&self.uuid, &self.json, 1_704_164_645_000_000)
    }
}

/// A fresh random uuid.
pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Asserts that `stored` is byte for byte the document saved.
pub(crate) fn assert_same(doc: &Doc, stored: Option<Vec<u8>>) {
    let stored = stored.unwrap_or_else(|| panic!("{} is not stored", doc.uuid));
    assert!(stored == doc.json, "{} came back different", doc.uuid);
}

/// `count` documents from the fake data set, in a stable order.
pub(crate) fn fake_docs(count: usize) -> Vec<Doc> {
    conformance::test_data::fake_paths(count)
        .iter()
        .map(|p| Doc::from_file(p))
        .collect()
}

/// The large recorded call (270 KB).
pub(crate) fn large_doc() -> Doc {
    Doc::from_file(&conformance::test_data::cat1_path())
}
