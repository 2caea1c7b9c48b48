//! The schema on disk: migrations, WAL, `create`, table names, and files that are not ours.

use plugin_loader::ErrorKind;
use serde_json::json;

use crate::fixtures::{fresh_db, inspect, open, open_err, open_path, uuid, Doc};

fn migrations(path: &std::path::Path, table: &str) -> Vec<(i64, String)> {
    let conn = inspect(path);
    let mut stmt = conn
        .prepare(&format!(
            "SELECT version, description FROM \"{table}_schema_migrations\" ORDER BY version"
        ))
        .unwrap();
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn objects(path: &std::path::Path) -> Vec<String> {
    let conn = inspect(path);
    let mut stmt = conn
        .prepare("SELECT type || ' ' || name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY 1")
        .unwrap();
    stmt.query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn the_default_config_creates_everything_at_open() {
    let dir = tempfile::tempdir().unwrap();
    // The directory does not exist yet either.
    let path = dir.path().join("data/nested/vcons.sqlite");
    let storage = open_path(&path);
    assert!(path.is_file());
    storage
        .save(&Doc::synthetic(&uuid(1), "2024-01-01T00:00:00Z").record())
        .unwrap();
    drop(storage);
    assert_eq!(
        objects(&path),
        vec![
            "index vcons_created_at_idx",
            "index vcons_uuid_idx",
            "table vcons",
            "table vcons_schema_migrations",
        ]
    );
    let recorded = migrations(&path, "vcons");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].0, 1);
    let columns: Vec<(String, String, bool)> = {
        let conn = inspect(&path);
        let mut stmt = conn
            .prepare("SELECT name, type, \"notnull\" FROM pragma_table_info('vcons') ORDER BY cid")
            .unwrap();
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let expected = [
        ("id", "TEXT", true),
        ("vcon", "TEXT", false),
        ("uuid", "TEXT", true),
        ("created_at", "TEXT", true),
        ("updated_at", "TEXT", true),
        ("subject", "TEXT", false),
        ("vcon_json", "TEXT", true),
    ];
    assert_eq!(
        columns,
        expected
            .iter()
            .map(|(n, t, nn)| (n.to_string(), t.to_string(), *nn))
            .collect::<Vec<_>>()
    );
}

#[test]
fn wal_mode_is_on() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    assert_eq!(storage.status().unwrap()["journal_mode"], "wal");
    drop(storage);
    let mode: String = inspect(&path)
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn migrations_fresh_then_no_op_then_recreate() {
    let (_dir, path) = fresh_db();
    // `create: false` on a file that exists (an empty file is an empty database) but has no
    // table: open works, operations say what to do.
    std::fs::write(&path, b"").unwrap();
    let storage = open(json!({"path": path, "create": false}));
    let doc = Doc::synthetic(&uuid(1), "2024-01-01T00:00:00Z");
    let err = storage.save(&doc.record()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NOT_FOUND, "{err}");
    assert!(err.message.contains("provision"), "{err}");
    assert_eq!(storage.status().unwrap()["provisioned"], false);

    let fresh = storage.provision(false).unwrap();
    assert_eq!(fresh["applied"], json!([1]));
    assert_eq!(fresh["version"], 1);
    assert_eq!(fresh["recreated"], false);
    assert_eq!(fresh["migrations_table"], "vcons_schema_migrations");
    storage.save(&doc.record()).unwrap();

    let again = storage.provision(false).unwrap();
    assert_eq!(again["applied"], json!([]));
    assert_eq!(again["version"], 1);
    assert!(storage.exists(&doc.uuid).unwrap());

    // Opening again (create: true) finds the schema current and changes nothing.
    let reopened = open_path(&path);
    assert!(reopened.exists(&doc.uuid).unwrap());
    assert_eq!(reopened.provision(false).unwrap()["applied"], json!([]));

    let recreated = storage.provision(true).unwrap();
    assert_eq!(recreated["recreated"], true);
    assert_eq!(recreated["applied"], json!([1]));
    assert!(!storage.exists(&doc.uuid).unwrap());
    assert!(!reopened.exists(&doc.uuid).unwrap());
    assert_eq!(storage.count().unwrap(), 0);
    storage.save(&doc.record()).unwrap();
    assert!(reopened.exists(&doc.uuid).unwrap());
    drop((storage, reopened));
    let recorded = migrations(&path, "vcons");
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].0, 1);
}

#[test]
fn create_false_refuses_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sqlite");
    let err = open_err(json!({"path": path, "create": false}));
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT);
    assert!(err.message.contains(&path.display().to_string()), "{err}");
    assert!(err.message.contains("create"), "{err}");
    assert!(!path.exists(), "create: false must not create the file");
}

#[test]
fn table_name_injection_is_refused_before_anything_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/vcons.sqlite");
    for bad in [
        "vcons; DROP TABLE x",
        "vcons\"; DROP TABLE x; --",
        "x y",
        "1vcons",
        "sqlite_master",
        "",
    ] {
        let err = open_err(json!({"path": path, "table_name": bad}));
        assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{bad}: {err}");
        assert!(err.message.contains("table_name"), "{err}");
    }
    let err = open_err(json!({"path": path, "table_name": "vcons; DROP TABLE x"}));
    assert!(
        err.message
            .contains("letter or `_` followed by at most 62 letters, digits or `_`"),
        "{err}"
    );
    assert!(!path.exists() && !path.parent().unwrap().exists());
}

#[test]
fn two_tables_in_one_file_are_independent() {
    let (_dir, path) = fresh_db();
    let a = open(json!({"path": path, "table_name": "vcons"}));
    let b = open(json!({"path": path, "table_name": "Archive_2024"}));
    let doc = Doc::synthetic(&uuid(1), "2024-01-01T00:00:00Z");
    a.save(&doc.record()).unwrap();
    assert!(!b.exists(&doc.uuid).unwrap());
    b.save(&doc.record()).unwrap();
    b.provision(true).unwrap();
    assert!(!b.exists(&doc.uuid).unwrap());
    assert!(a.exists(&doc.uuid).unwrap());
    drop((a, b));
    assert_eq!(migrations(&path, "Archive_2024").len(), 1);
    assert_eq!(migrations(&path, "vcons").len(), 1);
    assert!(objects(&path).contains(&"index Archive_2024_created_at_idx".to_owned()));
}

#[test]
fn a_table_this_plugin_did_not_create_is_left_alone() {
    let (_dir, path) = fresh_db();
    inspect(&path)
        .execute_batch(
            "CREATE TABLE vcons (uuid TEXT, data TEXT); INSERT INTO vcons VALUES ('a', 'b');",
        )
        .unwrap();
    let err = open_err(json!({"path": path}));
    assert_eq!(err.kind, ErrorKind::CONFLICT, "{err}");
    assert!(err.message.contains("not created by this plugin"), "{err}");
    let rows: i64 = inspect(&path)
        .query_row("SELECT COUNT(*) FROM vcons", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

#[test]
fn paths_that_cannot_be_a_database_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory.
    let err = open_err(json!({"path": dir.path()}));
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    assert!(
        err.message.contains(&dir.path().display().to_string()),
        "{err}"
    );
    // A file that is not SQLite.
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "this is not a database, just some text that is long enough ".repeat(20),
    )
    .unwrap();
    let err = open_err(json!({"path": text}));
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    assert!(err.message.contains("not a SQLite database"), "{err}");
    // A file where the directory should be.
    let err = open_err(json!({"path": text.join("vcons.sqlite")}));
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    assert!(err.message.contains("notes.txt"), "{err}");
    // In-memory and unknown options.
    assert_eq!(
        open_err(json!({"path": ":memory:"})).kind,
        ErrorKind::INVALID_INPUT
    );
    let err = open_err(json!({"path": dir.path().join("x.sqlite"), "pool": 3}));
    assert!(err.message.contains("pool"), "{err}");
}
