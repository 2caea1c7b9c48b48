//! Batches, listing, counting, status, provision, clear, and capability honesty.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use plugin_loader::{Capabilities, ErrorKind};
use serde_json::json;

use crate::fixtures::{fake_docs, library, mode_of, open, open_dir, tree, Doc};

fn uuid(n: u32) -> String {
    format!("018f2b9c-6a4e-7c1d-9f00-{n:012x}")
}

#[test]
fn declares_exactly_what_it_implements() {
    let meta = library().meta();
    assert_eq!(meta.name, "file");
    let expected = Capabilities::GET
        .union(Capabilities::DELETE)
        .union(Capabilities::EXISTS)
        .union(Capabilities::BATCH)
        .union(Capabilities::LIST)
        .union(Capabilities::COUNT)
        .union(Capabilities::STATUS)
        .union(Capabilities::PROVISION)
        .union(Capabilities::CLEAR);
    assert_eq!(meta.capabilities, expected);
    let tmp = tempfile::tempdir().unwrap();
    let storage = open_dir(tmp.path());
    assert_eq!(storage.capabilities(), expected);

    // Undeclared operations, called past the loader's guard, answer UNSUPPORTED.
    let err = storage
        .raw()
        .query(r#"{"tel": "+15551234567"}"#.into())
        .into_result()
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNSUPPORTED, "{}", err.message.as_str());
    let err = storage
        .raw()
        .call("namespaces".into(), b"{}".as_slice().into())
        .into_result()
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNSUPPORTED);
    assert_eq!(
        storage.query(&json!({"tel": "x"})).unwrap_err().kind,
        ErrorKind::UNSUPPORTED
    );
}

#[test]
fn option_defaults_are_published() {
    assert_eq!(
        library().meta().option_defaults,
        json!({
            "path": "./data/vcons",
            "organize_by_date": true,
            "compression": false,
            "max_file_size": 10_485_760,
            "file_permissions": "0o644",
            "dir_permissions": "0o755",
        })
    );
}

#[test]
fn batches_save_read_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open_dir(tmp.path());
    let docs = fake_docs(25);
    let too_big = Doc::synthetic(&uuid(1), "2024-01-01T00:00:00Z").with_json(&vec![b' '; 11 << 20]);
    let mut records: Vec<_> = docs.iter().map(Doc::record).collect();
    records.insert(3, too_big.record());
    let results = storage.save_many(&records).unwrap();
    assert_eq!(results.len(), 26);
    for (i, result) in results.iter().enumerate() {
        if i == 3 {
            assert_eq!(result.as_ref().unwrap_err().kind, ErrorKind::INVALID_INPUT);
        } else {
            result.as_ref().unwrap();
        }
    }
    let uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    let got = storage.get_many(&uuids).unwrap();
    for (doc, got) in docs.iter().zip(&got) {
        assert_eq!(got.as_deref(), Some(doc.json.as_slice()));
    }
    assert_eq!(storage.count().unwrap(), 25);
    assert!(!tree(tmp.path()).iter().any(|p| p.ends_with(".tmp")));

    let mut to_delete = uuids[..5].to_vec();
    to_delete.push("018f2b9c-6a4e-7c1d-9f00-ffffffffffff");
    assert_eq!(
        storage.delete_many(&to_delete).unwrap(),
        vec![true, true, true, true, true, false]
    );
    assert_eq!(storage.count().unwrap(), 20);
    assert_eq!(storage.get_many(&uuids[..1]).unwrap(), vec![None]);
}

#[test]
fn list_pages_newest_first_with_a_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open(json!({"path": tmp.path()}));
    let flat = open(json!({"path": tmp.path(), "organize_by_date": false}));
    let base = SystemTime::now() - Duration::from_secs(3600);
    let mut expected = Vec::new();
    for n in 0..7u32 {
        let doc = Doc::synthetic(&uuid(n), &format!("2024-01-0{}T00:00:00Z", 1 + n % 3));
        // Some flat, some dated: one listing covers both.
        let target = if n % 2 == 0 { &storage } else { &flat };
        target.save(&doc.record()).unwrap();
        // Distinct write times, older first.
        let path = if n % 2 == 0 {
            tmp.path()
                .join(format!("2024/01/0{}/{}.json", 1 + n % 3, doc.uuid))
        } else {
            tmp.path().join(format!("{}.json", doc.uuid))
        };
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(base + Duration::from_secs(u64::from(n)))
            .unwrap();
        expected.push(doc.uuid);
    }
    expected.reverse();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = storage.list(&json!({"limit": 3, "after": after})).unwrap();
        let uuids: Vec<String> = serde_json::from_value(page["uuids"].clone()).unwrap();
        assert!(uuids.len() <= 3);
        seen.extend(uuids);
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    // A default page holds them all; a bad cursor is refused.
    let all = storage.list(&json!({})).unwrap();
    assert_eq!(all["uuids"].as_array().unwrap().len(), 7);
    assert_eq!(all["next"], serde_json::Value::Null);
    let err = storage.list(&json!({"after": "garbage"})).unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT);
}

#[test]
fn status_reports_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vcons");
    let storage = open(json!({"path": dir, "compression": true, "file_permissions": "0640"}));
    let status = storage.status().unwrap();
    assert_eq!(status["exists"], false);
    assert_eq!(status["vcons"], 0);
    for doc in fake_docs(3) {
        storage.save(&doc.record()).unwrap();
    }
    let status = storage.status().unwrap();
    assert_eq!(status["path"], dir.display().to_string());
    assert_eq!(status["exists"], true);
    assert_eq!(status["vcons"], 3);
    assert_eq!(status["indexed"], 3);
    assert_eq!(status["compression"], true);
    assert_eq!(status["file_permissions"], "0o640");
    assert!(status["bytes"].as_u64().unwrap() > 0);
}

#[test]
fn provision_creates_the_directory_with_its_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/vcons");
    let storage = open(json!({"path": dir, "dir_permissions": "0o750"}));
    let report = storage.provision(false).unwrap();
    assert_eq!(report["created"], true, "{report}");
    assert!(dir.is_dir());
    assert_eq!(mode_of(&dir), 0o750);
    assert_eq!(mode_of(&dir.join(".index")), 0o750);
    let again = storage.provision(false).unwrap();
    assert_eq!(again["created"], false);
}

/// Files that are not the plugin's: `clear` and `recreate` must leave them alone.
fn foreign_files(base: &std::path::Path) -> Vec<&'static str> {
    let files = [
        "config.json",
        "notes.txt",
        "2024/01/01/README",
        "2024/01/01/summary.json",
        "archive/0195b7a2-69ef-8e73-9dd8-dd37220d7301.json",
        "2024/01/02/.0195b7a2-69ef-8e73-9dd8-dd37220d7301.1.2.tmp.keep",
    ];
    for file in files {
        let path = base.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"not a vCon").unwrap();
    }
    files.to_vec()
}

#[test]
fn clear_removes_vcons_only() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open_dir(tmp.path());
    for n in 0..4u32 {
        let doc = Doc::synthetic(&uuid(n), &format!("2024-01-0{}T12:00:00Z", n + 1));
        storage.save(&doc.record()).unwrap();
    }
    let foreign = foreign_files(tmp.path());
    assert_eq!(storage.clear().unwrap(), 4);
    assert_eq!(storage.count().unwrap(), 0);
    for n in 0..4u32 {
        assert_eq!(storage.get(&uuid(n)).unwrap(), None);
    }
    for file in &foreign {
        assert!(tmp.path().join(file).is_file(), "{file} was removed");
    }
    // Emptied date directories went; those with foreign files stayed.
    assert!(!tmp.path().join("2024/01/03").exists());
    assert!(tmp.path().join("2024/01/01").is_dir());
    assert_eq!(storage.clear().unwrap(), 0);
}

#[test]
fn recreate_empties_the_storage_but_keeps_foreign_files() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open(json!({"path": tmp.path(), "compression": true}));
    for n in 0..3u32 {
        let doc = Doc::synthetic(&uuid(n), "2024-01-04T12:00:00Z");
        storage.save(&doc.record()).unwrap();
    }
    let flat = open(json!({"path": tmp.path(), "organize_by_date": false}));
    flat.save(&Doc::synthetic(&uuid(9), "2024-01-04T12:00:00Z").record())
        .unwrap();
    // A stale temporary file from a crash long ago, and an unindexed Python file.
    let old_tmp = tmp.path().join(format!("2024/01/04/.{}.77.1.tmp", uuid(5)));
    std::fs::write(&old_tmp, b"{").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old_tmp)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    std::fs::create_dir_all(tmp.path().join("2023/05/06")).unwrap();
    std::fs::write(
        tmp.path().join(format!("2023/05/06/{}.json", uuid(7))),
        b"{}",
    )
    .unwrap();

    let foreign = foreign_files(tmp.path());
    let report = storage.provision(true).unwrap();
    assert_eq!(report["removed"], 5, "{report}");
    assert_eq!(storage.count().unwrap(), 0);
    assert!(!old_tmp.exists());
    assert!(!tmp.path().join("2023").exists());
    assert!(!tmp.path().join("2024/01/04").exists());
    let remaining: HashSet<String> = tree(tmp.path())
        .into_iter()
        .filter(|p| !p.ends_with('/'))
        .collect();
    let foreign: HashSet<String> = foreign.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(remaining, foreign);
    // Still usable.
    storage
        .save(&Doc::synthetic(&uuid(1), "2024-01-04T12:00:00Z").record())
        .unwrap();
    assert_eq!(storage.count().unwrap(), 1);
}

#[test]
fn data_survives_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = Doc::synthetic(&uuid(1), "2024-01-04T12:00:00Z");
    open_dir(tmp.path()).save(&doc.record()).unwrap();
    assert_eq!(open_dir(tmp.path()).get(&doc.uuid).unwrap(), Some(doc.json));
}

#[test]
fn concurrent_saves_and_deletes_in_one_date_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open_dir(tmp.path());
    std::thread::scope(|scope| {
        for t in 0..4u32 {
            let storage = &storage;
            scope.spawn(move || {
                for i in 0..50u32 {
                    let doc = Doc::synthetic(&uuid(t * 1000 + i), "2024-06-01T12:00:00Z");
                    storage.save(&doc.record()).unwrap();
                    assert_eq!(storage.get(&doc.uuid).unwrap(), Some(doc.json.clone()));
                    // Deleting the only file of the day prunes the directory the others use.
                    assert!(storage.delete(&doc.uuid).unwrap());
                }
            });
        }
    });
    assert_eq!(storage.count().unwrap(), 0);
    assert!(!tree(tmp.path()).iter().any(|p| p.ends_with(".tmp")));
}
