//! Round trips of real documents, and where they land on disk.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::fixtures::{fake_docs, large_doc, open, tree, Doc};

const UUID: &str = "018f2b9c-6a4e-7c1d-9f00-0123456789ab";

/// The `YYYY/MM/DD` of a document's `created_at` in its own offset, computed independently of
/// the plugin (from the string in the document).
fn local_day(doc: &Doc) -> String {
    let value: serde_json::Value = serde_json::from_slice(&doc.json).unwrap();
    let created_at = value["created_at"].as_str().unwrap();
    created_at[..10].replace('-', "/")
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn real_documents_round_trip_byte_for_byte_in_every_layout() {
    let mut docs = fake_docs(5);
    docs.push(large_doc());
    for organize_by_date in [true, false] {
        for compression in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let storage = open(json!({
                "path": tmp.path(),
                "organize_by_date": organize_by_date,
                "compression": compression,
            }));
            for doc in &docs {
                storage.save(&doc.record()).unwrap();
            }
            let ext = if compression { "json.gz" } else { "json" };
            for doc in &docs {
                let got = storage.get(&doc.uuid).unwrap();
                assert_eq!(
                    got.as_deref(),
                    Some(doc.json.as_slice()),
                    "{} (dated {organize_by_date}, gzip {compression})",
                    doc.uuid
                );
                assert!(storage.exists(&doc.uuid).unwrap());
                let rel = if organize_by_date {
                    format!("{}/{}.{ext}", local_day(doc), doc.uuid)
                } else {
                    format!("{}.{ext}", doc.uuid)
                };
                let path = tmp.path().join(&rel);
                assert!(path.is_file(), "{rel} missing in {:?}", tree(tmp.path()));
                let on_disk = if compression {
                    gunzip(&path)
                } else {
                    std::fs::read(&path).unwrap()
                };
                assert_eq!(on_disk, doc.json, "the file holds the document verbatim");
            }
            assert_eq!(storage.count().unwrap(), docs.len() as u64);
        }
    }
}

#[test]
fn compression_makes_the_large_document_smaller_on_disk() {
    let doc = large_doc();
    let tmp = tempfile::tempdir().unwrap();
    let storage = open(json!({"path": tmp.path(), "compression": true, "organize_by_date": false}));
    storage.save(&doc.record()).unwrap();
    let size = std::fs::metadata(tmp.path().join(format!("{}.json.gz", doc.uuid)))
        .unwrap()
        .len();
    assert!(
        size * 3 < doc.json.len() as u64,
        "{size} vs {}",
        doc.json.len()
    );
}

#[test]
fn the_date_is_the_document_s_own_day_across_midnight() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open(json!({ "path": tmp.path() }));
    // 02:10 UTC on the 19th is still the 18th at -05:00 ...
    let west = Doc::synthetic(UUID, "2023-12-18T21:10:15-05:00");
    storage.save(&west.record()).unwrap();
    assert!(tmp.path().join(format!("2023/12/18/{UUID}.json")).is_file());
    // ... and 21:30 UTC on the 19th is already the 20th at +05:00.
    let other = "018f2b9c-6a4e-7c1d-9f00-0123456789ac";
    let east = Doc::synthetic(other, "2023-12-20T02:30:00+05:00");
    storage.save(&east.record()).unwrap();
    assert!(tmp
        .path()
        .join(format!("2023/12/20/{other}.json"))
        .is_file());
    let z = "018f2b9c-6a4e-7c1d-9f00-0123456789ad";
    storage
        .save(&Doc::synthetic(z, "2024-02-29T23:59:59.999Z").record())
        .unwrap();
    assert!(tmp.path().join(format!("2024/02/29/{z}.json")).is_file());
}

#[test]
fn a_dated_file_is_found_and_deleted_through_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open(json!({ "path": tmp.path() }));
    let doc = Doc::synthetic(UUID, "2024-03-05T10:00:00+01:00");
    storage.save(&doc.record()).unwrap();

    let entry = tmp.path().join(".index").join(UUID);
    assert_eq!(
        std::fs::read_link(&entry).unwrap(),
        PathBuf::from(format!("../2024/03/05/{UUID}.json"))
    );
    assert_eq!(
        storage.get(UUID).unwrap().as_deref(),
        Some(doc.json.as_slice())
    );

    assert!(storage.delete(UUID).unwrap());
    assert!(!entry.exists() && std::fs::symlink_metadata(&entry).is_err());
    assert_eq!(storage.get(UUID).unwrap(), None);
    assert!(!storage.exists(UUID).unwrap());
    assert!(
        !storage.delete(UUID).unwrap(),
        "a second delete finds nothing"
    );
    // The emptied date directories are gone, the base and the index directory stay.
    assert_eq!(tree(tmp.path()), vec![".index/".to_owned()]);
}

#[test]
fn delete_keeps_date_directories_that_still_hold_something() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open(json!({ "path": tmp.path() }));
    let a = Doc::synthetic(UUID, "2024-03-05T10:00:00Z");
    let b = Doc::synthetic(
        "018f2b9c-6a4e-7c1d-9f00-0123456789ac",
        "2024-03-05T11:00:00Z",
    );
    let c = Doc::synthetic(
        "018f2b9c-6a4e-7c1d-9f00-0123456789ad",
        "2024-03-09T11:00:00Z",
    );
    for doc in [&a, &b, &c] {
        storage.save(&doc.record()).unwrap();
    }
    std::fs::write(tmp.path().join("2024/03/09/README"), b"operator's note").unwrap();
    assert!(storage.delete(&a.uuid).unwrap());
    assert!(tmp.path().join("2024/03/05").is_dir(), "b is still there");
    assert!(storage.delete(&b.uuid).unwrap());
    assert!(!tmp.path().join("2024/03/05").exists());
    assert!(storage.delete(&c.uuid).unwrap());
    assert!(
        tmp.path().join("2024/03/09/README").is_file(),
        "a foreign file keeps its directory"
    );
}

#[test]
fn a_changed_created_at_moves_the_file_and_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = open(json!({ "path": tmp.path() }));
    let first = Doc::synthetic(UUID, "2024-01-01T10:00:00Z");
    storage.save(&first.record()).unwrap();
    let moved = Doc::synthetic(UUID, "2024-02-02T10:00:00Z");
    storage.save(&moved.record()).unwrap();
    assert_eq!(
        storage.get(UUID).unwrap().as_deref(),
        Some(moved.json.as_slice())
    );
    assert_eq!(
        tree(tmp.path()),
        vec![
            ".index/".to_owned(),
            format!(".index/{UUID}"),
            "2024/".to_owned(),
            "2024/02/".to_owned(),
            "2024/02/02/".to_owned(),
            format!("2024/02/02/{UUID}.json"),
        ]
    );
    assert_eq!(storage.count().unwrap(), 1);
}

#[test]
fn changing_the_options_leaves_one_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = Doc::synthetic(UUID, "2024-01-01T10:00:00Z");
    let v2 = doc.with_json(br#"{"uuid":"018f2b9c-6a4e-7c1d-9f00-0123456789ab","v":2}"#);
    let v3 = doc.with_json(br#"{"uuid":"018f2b9c-6a4e-7c1d-9f00-0123456789ab","v":3}"#);
    let v4 = doc.with_json(br#"{"uuid":"018f2b9c-6a4e-7c1d-9f00-0123456789ab","v":4}"#);

    // Flat, plain.
    let flat = open(json!({"path": tmp.path(), "organize_by_date": false}));
    flat.save(&doc.record()).unwrap();
    // Flat, gzip: the plain copy (which `get` would prefer) goes.
    let flat_gz = open(json!({"path": tmp.path(), "organize_by_date": false, "compression": true}));
    flat_gz.save(&v2.record()).unwrap();
    assert_eq!(tree(tmp.path()), vec![format!("{UUID}.json.gz")]);
    assert_eq!(flat.get(UUID).unwrap().as_deref(), Some(v2.json.as_slice()));
    // Dated: the flat copy goes.
    let dated = open(json!({ "path": tmp.path() }));
    dated.save(&v3.record()).unwrap();
    assert_eq!(
        tree(tmp.path())
            .iter()
            .filter(|p| p.ends_with(".json") || p.ends_with(".gz"))
            .count(),
        1,
        "{:?}",
        tree(tmp.path())
    );
    assert_eq!(flat.get(UUID).unwrap().as_deref(), Some(v3.json.as_slice()));
    // Flat again: the dated copy, its entry and its directories go.
    flat.save(&v4.record()).unwrap();
    assert_eq!(
        tree(tmp.path()),
        vec![".index/".to_owned(), format!("{UUID}.json")]
    );
    for storage in [&flat, &flat_gz, &dated] {
        assert_eq!(
            storage.get(UUID).unwrap().as_deref(),
            Some(v4.json.as_slice())
        );
        assert_eq!(storage.count().unwrap(), 1);
    }
}
