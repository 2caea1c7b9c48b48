//! Directories the Python server wrote (no index), and what the Python server can read of ours.

use std::io::Write;

use serde_json::json;

use crate::fixtures::{open, open_dir, tree, Doc};

const FLAT: &str = "0195b7a2-69ef-8e73-9dd8-dd37220d7301";
const DATED: &str = "0195b7a2-69ef-8e73-9dd8-dd37220d7302";
const DATED_GZ: &str = "0195b7a2-69ef-8e73-9dd8-dd37220d7303";
const BOTH: &str = "0195b7a2-69ef-8e73-9dd8-dd37220d7304";

fn doc(uuid: &str) -> Vec<u8> {
    format!(r#"{{"uuid":"{uuid}","vcon":"0.0.1","created_at":"2024-03-05T10:00:00+00:00"}}"#)
        .into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// What the Python module leaves: files only, no index.
fn python_directory(base: &std::path::Path) {
    std::fs::create_dir_all(base.join("2024/03/05")).unwrap();
    std::fs::create_dir_all(base.join("2024/03/06")).unwrap();
    std::fs::write(base.join(format!("{FLAT}.json")), doc(FLAT)).unwrap();
    std::fs::write(base.join(format!("2024/03/05/{DATED}.json")), doc(DATED)).unwrap();
    std::fs::write(
        base.join(format!("2024/03/06/{DATED_GZ}.json.gz")),
        gzip(&doc(DATED_GZ)),
    )
    .unwrap();
    // Both formats flat: the Python module reads `.json`.
    std::fs::write(base.join(format!("{BOTH}.json")), doc(BOTH)).unwrap();
    std::fs::write(
        base.join(format!("{BOTH}.json.gz")),
        gzip(b"{\"stale\":true}"),
    )
    .unwrap();
}

#[test]
fn a_directory_the_python_server_wrote_is_readable() {
    for organize_by_date in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        python_directory(tmp.path());
        let storage = open(json!({"path": tmp.path(), "organize_by_date": organize_by_date}));
        for uuid in [FLAT, DATED, DATED_GZ, BOTH] {
            assert_eq!(
                storage.get(uuid).unwrap(),
                Some(doc(uuid)),
                "{uuid} (organize_by_date {organize_by_date})"
            );
            assert!(storage.exists(uuid).unwrap());
        }
        assert_eq!(storage.count().unwrap(), 4);
        let page = storage.list(&json!({"limit": 10})).unwrap();
        let mut listed: Vec<String> = serde_json::from_value(page["uuids"].clone()).unwrap();
        listed.sort();
        assert_eq!(listed, vec![FLAT, DATED, DATED_GZ, BOTH]);
        // Opening built the index for the dated files.
        assert!(tmp.path().join(".index").join(DATED).exists());
        assert!(tmp.path().join(".index").join(DATED_GZ).exists());

        assert!(storage.delete(DATED).unwrap());
        assert!(
            !tmp.path().join("2024/03/05").exists(),
            "emptied date dir removed"
        );
        assert!(storage.delete(BOTH).unwrap());
        assert!(
            !tmp.path().join(format!("{BOTH}.json.gz")).exists(),
            "both formats go"
        );
        assert_eq!(storage.count().unwrap(), 2);
    }
}

#[test]
fn python_files_added_after_the_index_are_found_after_provision() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open_dir(tmp.path());
    storage
        .save(&Doc::synthetic(FLAT, "2024-03-05T10:00:00Z").record())
        .unwrap();
    // The Python server, sharing the directory, writes a dated file: no index entry.
    std::fs::create_dir_all(tmp.path().join("2024/03/07")).unwrap();
    std::fs::write(
        tmp.path().join(format!("2024/03/07/{DATED}.json")),
        doc(DATED),
    )
    .unwrap();
    // A flat one is found at once.
    std::fs::write(tmp.path().join(format!("{BOTH}.json")), doc(BOTH)).unwrap();
    assert_eq!(storage.get(BOTH).unwrap(), Some(doc(BOTH)));
    // The dated one is not, until provision indexes it (documented: no tree walks per miss).
    assert_eq!(storage.get(DATED).unwrap(), None);
    let report = storage.provision(false).unwrap();
    assert_eq!(report["index"]["added"], 1, "{report}");
    assert_eq!(storage.get(DATED).unwrap(), Some(doc(DATED)));
}

#[test]
fn an_entry_left_dangling_by_the_python_server_reads_as_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open_dir(tmp.path());
    let d = Doc::synthetic(DATED, "2024-03-05T10:00:00Z");
    storage.save(&d.record()).unwrap();
    // The Python server deletes the file (and the emptied directories), not our entry.
    std::fs::remove_dir_all(tmp.path().join("2024")).unwrap();
    assert_eq!(storage.get(DATED).unwrap(), None);
    assert!(!storage.exists(DATED).unwrap());
    assert_eq!(storage.count().unwrap(), 0);
    assert_eq!(storage.list(&json!({})).unwrap()["uuids"], json!([]));
    assert!(!storage.delete(DATED).unwrap());
    assert!(
        !tmp.path().join(".index").join(DATED).exists(),
        "delete drops it"
    );
    // And saving again works.
    storage.save(&d.record()).unwrap();
    assert_eq!(storage.get(DATED).unwrap(), Some(d.json.clone()));
}

#[test]
fn our_directory_has_the_python_layout_plus_hidden_names_only() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open(json!({"path": tmp.path(), "compression": true}));
    storage
        .save(&Doc::synthetic(DATED, "2024-03-05T10:00:00Z").record())
        .unwrap();
    let visible: Vec<String> = tree(tmp.path())
        .into_iter()
        .filter(|p| !p.split('/').any(|c| c.starts_with('.')))
        .collect();
    assert_eq!(
        visible,
        vec![
            "2024/".to_owned(),
            "2024/03/".to_owned(),
            "2024/03/05/".to_owned(),
            format!("2024/03/05/{DATED}.json.gz"),
        ]
    );
}
