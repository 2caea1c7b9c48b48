//! Finding the plugin, opening storages, looking into the file, and the test documents.

use std::path::{Path, PathBuf};

use plugin_loader::{CallError, LoadError, PluginLibrary, StorageInstance, VconRecord};

/// The built plugin file.
pub(crate) fn plugin_path() -> PathBuf {
    conformance::test_data::built_plugin("sqlite")
}

/// The loaded plugin.
pub(crate) fn library() -> &'static PluginLibrary {
    PluginLibrary::load(&plugin_path(), None).unwrap()
}

/// A storage opened with `options` (a JSON object).
pub(crate) fn open(options: serde_json::Value) -> StorageInstance {
    library()
        .open(&options.to_string())
        .unwrap_or_else(|err| panic!("opening with {options}: {err}"))
}

/// The error of opening with `options`, which must fail.
pub(crate) fn open_err(options: serde_json::Value) -> CallError {
    match library().open(&options.to_string()) {
        Ok(_) => panic!("opening with {options} succeeded"),
        Err(LoadError::OpenFailed { error, .. }) => error,
        Err(other) => panic!("opening with {options}: not the plugin's refusal: {other}"),
    }
}

/// A fresh database file in its own temporary directory (kept alive by the returned guard).
pub(crate) fn fresh_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vcons.sqlite");
    (dir, path)
}

/// A storage on `path` with the defaults otherwise.
pub(crate) fn open_path(path: &Path) -> StorageInstance {
    open(serde_json::json!({ "path": path }))
}

/// A direct connection to the file, to look at what the plugin wrote. Only while no storage
/// is open on the file (drop it first): see the crate's documentation.
pub(crate) fn inspect(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn
}

/// One text column of the row of `uuid` in table `vcons` (no storage may be open on the file).
pub(crate) fn column(path: &Path, uuid: &str, column: &str) -> Option<String> {
    inspect(path)
        .query_row(
            &format!("SELECT {column} FROM vcons WHERE id = ?1"),
            [uuid],
            |row| row.get(0),
        )
        .unwrap()
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
        let json = std::fs::read(path).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
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
        let (created_at_us, offset_s) = parse_rfc3339(created_at);
        let json = serde_json::json!({
            "uuid": uuid,
            "vcon": "0.0.1",
            "created_at": created_at,
            "parties": [{"tel": "+15551234567", "name": "Ann"}],
            "unknown_key_kept": {"x": [1, 2, 3]},
        })
        .to_string()
        .into_bytes();
        Self {
            uuid: uuid.to_owned(),
            json,
            created_at_us,
            offset_s,
            subject: None,
        }
    }

    /// The same document with other bytes (a new version).
    pub(crate) fn with_json(&self, json: &[u8]) -> Self {
        Self {
            json: json.to_vec(),
            ..self.clone()
        }
    }

    /// The record the host passes to the plugin.
    pub(crate) fn record(&self) -> VconRecord<'_> {
        VconRecord::new(&self.uuid, &self.json, self.created_at_us)
            .with_offset(self.offset_s)
            .with_subject(self.subject.as_deref())
    }
}

/// A uuid-shaped string numbered `n` (distinct per `n`, canonical form).
pub(crate) fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// `count` documents from the fake data set, in a stable order (all of them for `usize::MAX`).
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
