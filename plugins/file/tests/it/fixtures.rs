//! Finding the plugin, opening storages, and the test documents.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use plugin_loader::{PluginLibrary, StorageInstance, VconRecord};

/// The built plugin file.
pub(crate) fn plugin_path() -> PathBuf {
    conformance::test_data::built_plugin("file")
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

/// A storage on `dir` with the defaults otherwise.
pub(crate) fn open_dir(dir: &Path) -> StorageInstance {
    open(serde_json::json!({ "path": dir }))
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
            "parties": [],
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

/// Every file under `dir` (recursively, links included), relative, sorted.
pub(crate) fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(base)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if entry.file_type().unwrap().is_dir() {
            out.push(format!("{rel}/"));
            walk(base, &path, out);
        } else {
            out.push(rel);
        }
    }
}

/// The permission bits of a path (not following links).
pub(crate) fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Whether this process can write into a directory with mode 0o555 (root can): such a test
/// cannot observe a permission error.
pub(crate) fn permissions_are_enforced() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let enforced = std::fs::write(locked.join("probe"), b"x").is_err();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    enforced
}

#[test]
fn rfc3339_parsing_of_the_test_helper() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), (0, 0));
    assert_eq!(
        parse_rfc3339("2023-12-19T02:10:15.204+00:00"),
        (1_702_951_815_204_000, 0)
    );
    assert_eq!(
        parse_rfc3339("2025-03-06T15:30:30-05:00"),
        (1_741_293_030_000_000, -18_000)
    );
}
