//! Untrusted text, a locked database, and capability honesty.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use plugin_loader::{Capabilities, ErrorKind};
use serde_json::json;

use crate::fixtures::{column, fresh_db, inspect, library, open, open_path, uuid, Doc};

#[test]
fn sql_in_the_subject_is_stored_as_text() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let subject = "'; DROP TABLE vcons; --";
    let mut doc = Doc::synthetic(&uuid(1), "2024-01-01T00:00:00Z");
    doc.subject = Some(subject.to_owned());
    storage.save(&doc.record()).unwrap();
    // The table is still there and still works.
    let other = Doc::synthetic(&uuid(2), "2024-01-01T00:00:00Z");
    storage.save(&other.record()).unwrap();
    assert_eq!(storage.count().unwrap(), 2);
    // The same text as a uuid or a search value is only ever a value.
    assert_eq!(storage.get(subject).unwrap(), None);
    assert!(!storage.delete(subject).unwrap());
    assert!(storage.query(&json!({"name": subject})).unwrap().is_empty());
    assert_eq!(storage.count().unwrap(), 2);
    drop(storage);
    assert_eq!(
        column(&path, &doc.uuid, "subject").as_deref(),
        Some(subject)
    );
    let tables: i64 = inspect(&path)
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'vcons'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1);
}

/// Not a test of its own: the child process `hold_write_lock_in_child` starts. With
/// `SQLITE_IT_LOCK_DB` set, it takes the database's write lock with its own SQLite, creates the
/// marker file, and keeps the lock until the marker is removed (or 60 s pass).
#[test]
fn lock_holder_child() {
    let (Some(db), Some(marker)) = (
        std::env::var_os("SQLITE_IT_LOCK_DB"),
        std::env::var_os("SQLITE_IT_LOCK_MARKER"),
    ) else {
        return;
    };
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    std::fs::write(&marker, b"locked").unwrap();
    let started = Instant::now();
    while Path::new(&marker).exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    conn.execute_batch("ROLLBACK").unwrap();
}

/// Another process holding the database's write lock, released on drop. A process, not a
/// connection here: this process's two SQLite copies (the plugin's and the test's) would not
/// see each other's POSIX locks.
struct LockHolder {
    child: Child,
    marker: std::path::PathBuf,
}

fn hold_write_lock_in_child(db: &Path) -> LockHolder {
    let marker = db.with_extension("locked");
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "safety::lock_holder_child", "--test-threads=1"])
        .env("SQLITE_IT_LOCK_DB", db)
        .env("SQLITE_IT_LOCK_MARKER", &marker)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the lock-holding child did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    LockHolder { child, marker }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.marker);
        let _ = self.child.wait();
    }
}

#[test]
fn a_locked_database_is_unavailable_not_a_panic() {
    let (_dir, path) = fresh_db();
    let storage = open(json!({"path": path, "busy_timeout_ms": 200}));
    let before = Doc::synthetic(&uuid(1), "2024-01-01T00:00:00Z");
    storage.save(&before.record()).unwrap();
    let doc = Doc::synthetic(&uuid(2), "2024-01-01T00:00:00Z");
    {
        let _lock = hold_write_lock_in_child(&path);
        let started = Instant::now();
        let err = storage.save(&doc.record()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
        assert!(err.is_retryable());
        assert!(
            err.message.contains("locked") || err.message.contains("busy"),
            "{err}"
        );
        assert!(err.message.contains(&path.display().to_string()), "{err}");
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "it waited busy_timeout_ms"
        );
        let records = [doc.record()];
        let err = storage.save_many(&records).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
        assert_eq!(
            storage.delete(&before.uuid).unwrap_err().kind,
            ErrorKind::UNAVAILABLE
        );
        // Readers are not blocked by a writer (WAL).
        assert_eq!(storage.get(&before.uuid).unwrap().unwrap(), before.json);
        assert_eq!(storage.count().unwrap(), 1);
    }
    // Once the lock is gone, the retry succeeds.
    storage.save(&doc.record()).unwrap();
    assert_eq!(storage.count().unwrap(), 2);
}

#[test]
fn capabilities_are_exactly_what_is_implemented() {
    let declared = Capabilities::GET
        .union(Capabilities::DELETE)
        .union(Capabilities::EXISTS)
        .union(Capabilities::BATCH)
        .union(Capabilities::LIST)
        .union(Capabilities::QUERY)
        .union(Capabilities::COUNT)
        .union(Capabilities::STATUS)
        .union(Capabilities::PROVISION)
        .union(Capabilities::CLEAR);
    assert_eq!(library().meta().capabilities, declared);
    assert_eq!(library().meta().name, "sqlite");
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    assert_eq!(storage.capabilities(), declared);
    // Everything outside the fixed set answers UNSUPPORTED through the raw trait object.
    let unknown = storage
        .raw()
        .call("no_such_operation".into(), b"{}".as_slice().into())
        .into_result()
        .unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::UNSUPPORTED);
    let defaults = &library().meta().option_defaults;
    assert_eq!(
        defaults,
        &json!({
            "path": "./data/vcons.sqlite",
            "table_name": "vcons",
            "busy_timeout_ms": 5000,
            "pool_size": 4,
            "synchronous": "normal",
            "create": true,
        })
    );
}
