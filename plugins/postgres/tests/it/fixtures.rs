//! Finding the plugin and the server, fresh tables, a direct connection to look at what the
//! plugin wrote, and the test documents.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use plugin_loader::{CallError, LoadError, PluginLibrary, StorageInstance, VconRecord};
use serde_json::{json, Value};

/// Held shared by every test that talks to the server, and exclusively by the test that
/// restarts it, so no other test sees the restart.
static SERVER: RwLock<()> = RwLock::new(());

/// The built plugin file.
pub(crate) fn plugin_path() -> PathBuf {
    conformance::test_data::built_plugin("postgres")
}

/// The loaded plugin.
pub(crate) fn library() -> &'static PluginLibrary {
    PluginLibrary::load(&plugin_path(), None).unwrap()
}

/// The server the tests use: `VCON_TEST_PG_HOST`/`_PORT`/`_DATABASE`/`_USER`, by default the
/// machine's own (127.0.0.1:5432, database `test`, user `postgres`, trust auth).
pub(crate) fn host() -> String {
    std::env::var("VCON_TEST_PG_HOST").unwrap_or_else(|_| "127.0.0.1".to_owned())
}

pub(crate) fn port() -> u16 {
    std::env::var("VCON_TEST_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432)
}

pub(crate) fn database() -> String {
    std::env::var("VCON_TEST_PG_DATABASE").unwrap_or_else(|_| "test".to_owned())
}

pub(crate) fn user() -> String {
    std::env::var("VCON_TEST_PG_USER").unwrap_or_else(|_| "postgres".to_owned())
}

/// Whether the server accepts TCP connections.
pub(crate) fn reachable() -> bool {
    (host(), port())
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
}

/// The server, shared with the other tests; `None` (after saying so loudly) when it is not
/// reachable, unless `VCON_REQUIRE_SERVICES=1`, which turns that into a failure.
pub(crate) fn server() -> Option<Server> {
    let guard = SERVER.read().unwrap_or_else(PoisonError::into_inner);
    check_reachable().then_some(Server {
        _shared: Some(guard),
        _exclusive: None,
    })
}

/// The server, for this test alone (the restart test).
pub(crate) fn server_exclusive() -> Option<Server> {
    let guard = SERVER.write().unwrap_or_else(PoisonError::into_inner);
    check_reachable().then_some(Server {
        _shared: None,
        _exclusive: Some(guard),
    })
}

fn check_reachable() -> bool {
    if reachable() {
        return true;
    }
    let message = format!(
        "PostgreSQL not reachable at {}:{} — start it with: pg_ctlcluster --skip-systemctl-redirect \
         $(ls /etc/postgresql) main start",
        host(),
        port()
    );
    if std::env::var("VCON_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{message} (VCON_REQUIRE_SERVICES=1, so this is a failure)");
    }
    eprintln!("\n*** SKIPPED: {message} ***\n");
    false
}

/// Access to the server for one test.
pub(crate) struct Server {
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _exclusive: Option<RwLockWriteGuard<'static, ()>>,
}

impl Server {
    /// Options for a storage on `table` of the test database.
    pub(crate) fn options(&self, table: &str) -> Value {
        json!({
            "host": host(),
            "port": port(),
            "database": database(),
            "user": user(),
            "table_name": table,
        })
    }

    /// A table name no other test (or run) uses, dropped (with its migration records) when the
    /// guard goes.
    pub(crate) fn fresh_table(&self) -> Table {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        Table { name }
    }
}

/// A test's own table.
pub(crate) struct Table {
    pub(crate) name: String,
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Ok(direct) = Direct::try_connect() {
            let _ = direct.client_batch(&format!("DROP TABLE IF EXISTS \"{}\"", self.name));
            let _ = direct.execute(
                "DELETE FROM vcon_host_schema_migrations WHERE table_name = $1",
                &[&self.name],
            );
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

/// A direct connection to the test database, beside the plugin, to see what it wrote.
pub(crate) struct Direct {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Direct {
    pub(crate) fn connect() -> Self {
        Self::try_connect().unwrap()
    }

    pub(crate) fn try_connect() -> Result<Self, tokio_postgres::Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = tokio_postgres::Config::new();
        config
            .host(host())
            .port(port())
            .dbname(database())
            .user(user());
        let client = runtime.block_on(async {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        Ok(Self { runtime, client })
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<tokio_postgres::Row> {
        self.runtime
            .block_on(self.client.query(sql, params))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub(crate) fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.runtime.block_on(self.client.execute(sql, params))
    }

    pub(crate) fn client_batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.runtime.block_on(self.client.batch_execute(sql))
    }

    pub(crate) fn batch(&self, sql: &str) {
        self.client_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// One text value (`NULL` as `None`), e.g. `column_text("SELECT subject FROM t")`.
    pub(crate) fn text(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Option<String> {
        self.query(sql, params)
            .first()
            .and_then(|row| row.get::<_, Option<String>>(0))
    }

    /// A count or other integer.
    pub(crate) fn int(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.query(sql, params)[0].get(0)
    }

    /// Whether a table of this name exists (through search_path).
    pub(crate) fn table_exists(&self, name: &str) -> bool {
        self.query(
            "SELECT to_regclass($1::text) IS NOT NULL",
            &[&format!("\"{name}\"")],
        )[0]
        .get(0)
    }
}

/// A vCon document with the fields the host extracts.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub(crate) uuid: String,
    pub(crate) json: Vec<u8>,
    pub(crate) created_at_us: i64,
    pub(crate) offset_s: i32,
    pub(crate) subject: Option<String>,
}

impl Doc {
    /// A document read from a file, its fields extracted as the host would.
    pub(crate) fn from_file(path: &Path) -> Self {
        Self::from_json(std::fs::read(path).unwrap())
    }

    /// A document from its JSON, its fields extracted as the host would.
    pub(crate) fn from_json(json: Vec<u8>) -> Self {
        let value: Value = serde_json::from_slice(&json).unwrap();
        let uuid = value["uuid"].as_str().unwrap().to_owned();
        let (created_at_us, offset_s) = value["created_at"].as_str().map_or((0, 0), parse_rfc3339);
        Self {
            uuid,
            json,
            created_at_us,
            offset_s,
            subject: value["subject"].as_str().map(str::to_owned),
        }
    }

    /// A small synthetic document.
    pub(crate) fn synthetic(uuid: &str, created_at: &str) -> Self {
        Self::from_json(
            json!({
                "uuid": uuid,
                "vcon": "0.0.1",
                "created_at": created_at,
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
            ..self.clone()
        }
    }

    /// The record the host passes to the plugin.
    pub(crate) fn record(&self) -> VconRecord<'_> {
        VconRecord::new(&self.uuid, &self.json, self.created_at_us)
            .with_offset(self.offset_s)
            .with_subject(self.subject.as_deref())
    }

    /// The document parsed, to compare with what a storage answers.
    pub(crate) fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap()
    }
}

/// A fresh random uuid.
pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Asserts that `stored` is the same JSON document as `doc`.
pub(crate) fn assert_same(doc: &Doc, stored: Option<Vec<u8>>) {
    let stored = stored.unwrap_or_else(|| panic!("{} is not stored", doc.uuid));
    let value: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(value, doc.value(), "{} came back different", doc.uuid);
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

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` as (microseconds since the epoch, offset seconds).
pub(crate) fn parse_rfc3339(text: &str) -> (i64, i32) {
    let num = |s: &str| -> i64 { s.parse().unwrap_or_else(|_| panic!("bad date {text}")) };
    let (date, rest) = text.split_once('T').unwrap();
    let mut ymd = date.split('-');
    let (y, m, d) = (
        num(ymd.next().unwrap()),
        num(ymd.next().unwrap()),
        num(ymd.next().unwrap()),
    );
    let (time, offset_s) = if let Some(time) = rest.strip_suffix('Z') {
        (time, 0)
    } else {
        let at = rest.rfind(['+', '-']).unwrap();
        let (time, offset) = rest.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (oh, om) = offset[1..].split_once(':').unwrap();
        (time, sign * (num(oh) * 3600 + num(om) * 60))
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = hms.split(':');
    let (h, mi, s) = (
        num(hms.next().unwrap()),
        num(hms.next().unwrap()),
        num(hms.next().unwrap()),
    );
    let micros = if frac.is_empty() {
        0
    } else {
        num(&format!("{frac:0<6}")[..6])
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let local_s = days * 86_400 + h * 3600 + mi * 60 + s;
    (
        (local_s - offset_s) * 1_000_000 + micros,
        i32::try_from(offset_s).unwrap(),
    )
}
