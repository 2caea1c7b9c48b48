//! The operations on real documents: round trips, upserts, listing, searching, status.

use plugin_loader::ErrorKind;
use serde_json::json;

use crate::fixtures::{column, fake_docs, fresh_db, inspect, large_doc, open_path, uuid, Doc};

#[test]
fn real_documents_round_trip_byte_for_byte() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let mut docs = fake_docs(usize::MAX);
    assert!(docs.len() > 600, "the fake data set is missing");
    docs.push(large_doc());
    for doc in &docs {
        storage.save(&doc.record()).unwrap();
    }
    for doc in &docs {
        let stored = storage.get(&doc.uuid).unwrap().unwrap();
        assert!(stored == doc.json, "{} came back different", doc.uuid);
    }
    assert_eq!(storage.count().unwrap(), docs.len() as u64);
    drop(storage);

    // The row's columns, as the Python postgres module fills them.
    let large = large_doc();
    let conn = inspect(&path);
    let (vcon, uuid_col, subject, json): (Option<String>, String, Option<String>, Vec<u8>) = conn
        .query_row(
            "SELECT vcon, uuid, subject, CAST(vcon_json AS BLOB) FROM vcons WHERE id = ?1",
            [&large.uuid],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&large.json).unwrap();
    assert_eq!(vcon.as_deref(), value["vcon"].as_str());
    assert_eq!(uuid_col, large.uuid);
    assert_eq!(subject, large.subject);
    assert_eq!(json, large.json);
    let stored_type: String = conn
        .query_row(
            "SELECT typeof(vcon_json) FROM vcons WHERE id = ?1",
            [&large.uuid],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        stored_type, "text",
        "stored as text, so sqlite3 and json_* read it"
    );
    let fake = &docs[0];
    assert_eq!(column(&path, &fake.uuid, "vcon").as_deref(), Some("0.0.1"));
}

#[test]
fn created_at_is_utc_rfc3339_with_microseconds() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let doc = Doc::synthetic(&uuid(1), "2023-12-18T21:10:15.204-05:00");
    storage.save(&doc.record()).unwrap();
    drop(storage);
    assert_eq!(
        column(&path, &doc.uuid, "created_at").as_deref(),
        Some("2023-12-19T02:10:15.204000Z")
    );
    // SQLite's own date functions read it.
    let day: String = inspect(&path)
        .query_row("SELECT date(created_at) FROM vcons", [], |row| row.get(0))
        .unwrap();
    assert_eq!(day, "2023-12-19");
}

#[test]
fn save_is_an_upsert_that_moves_updated_at() {
    let (_dir, path) = fresh_db();
    let first = Doc::synthetic(&uuid(7), "2024-01-01T00:00:00Z");
    let storage = open_path(&path);
    storage.save(&first.record()).unwrap();
    drop(storage);
    let updated_1 = column(&path, &first.uuid, "updated_at").unwrap();

    std::thread::sleep(std::time::Duration::from_millis(5));
    let mut second =
        first.with_json(br#"{"uuid":"00000000-0000-4000-8000-000000000007","vcon":"0.4.0"}"#);
    second.subject = Some("revised".to_owned());
    let storage = open_path(&path);
    storage.save(&second.record()).unwrap();
    assert_eq!(storage.count().unwrap(), 1);
    assert_eq!(storage.get(&first.uuid).unwrap().unwrap(), second.json);
    drop(storage);

    let updated_2 = column(&path, &first.uuid, "updated_at").unwrap();
    assert!(updated_2 > updated_1, "{updated_1} then {updated_2}");
    assert_eq!(updated_2.len(), "2024-01-01T00:00:00.000000Z".len());
    let rows: i64 = inspect(&path)
        .query_row("SELECT COUNT(*) FROM vcons", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(column(&path, &first.uuid, "vcon").as_deref(), Some("0.4.0"));
    assert_eq!(
        column(&path, &first.uuid, "subject").as_deref(),
        Some("revised")
    );
}

#[test]
fn a_document_without_a_version_string_stores_null() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let doc = Doc::synthetic(&uuid(8), "2024-01-01T00:00:00Z")
        .with_json(br#"{"uuid":"00000000-0000-4000-8000-000000000008","vcon":4}"#);
    storage.save(&doc.record()).unwrap();
    assert_eq!(storage.get(&doc.uuid).unwrap().unwrap(), doc.json);
    drop(storage);
    assert_eq!(column(&path, &doc.uuid, "vcon"), None);
}

#[test]
fn delete_exists_count_clear() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let docs: Vec<Doc> = (0..10)
        .map(|n| Doc::synthetic(&uuid(n), "2024-02-03T04:05:06Z"))
        .collect();
    for doc in &docs {
        storage.save(&doc.record()).unwrap();
    }
    assert!(storage.exists(&docs[3].uuid).unwrap());
    assert!(!storage.exists(&uuid(99)).unwrap());
    assert_eq!(storage.get(&uuid(99)).unwrap(), None);
    assert!(storage.delete(&docs[3].uuid).unwrap());
    assert!(!storage.delete(&docs[3].uuid).unwrap());
    assert!(!storage.exists(&docs[3].uuid).unwrap());
    assert_eq!(storage.count().unwrap(), 9);
    let removed = storage
        .delete_many(&[&docs[0].uuid, &uuid(99), &docs[1].uuid, &docs[0].uuid])
        .unwrap();
    assert_eq!(removed, vec![true, false, true, false]);
    let got = storage
        .get_many(&[&docs[2].uuid, &docs[0].uuid, &docs[4].uuid])
        .unwrap();
    assert_eq!(got[0].as_deref(), Some(docs[2].json.as_slice()));
    assert_eq!(got[1], None);
    assert_eq!(got[2].as_deref(), Some(docs[4].json.as_slice()));
    assert_eq!(storage.clear().unwrap(), 7);
    assert_eq!(storage.count().unwrap(), 0);
    assert_eq!(storage.clear().unwrap(), 0);
}

#[test]
fn list_pages_newest_first_with_an_opaque_cursor() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    // 25 documents over 10 distinct times (so most share a created_at), saved in a scrambled
    // order: ties are broken by uuid, descending.
    let mut docs: Vec<Doc> = (0..25u64)
        .map(|n| {
            let at = format!("2024-03-{:02}T12:00:00Z", 1 + (n * 7) % 10);
            Doc::synthetic(&uuid((n * 11) % 25), &at)
        })
        .collect();
    for doc in &docs {
        storage.save(&doc.record()).unwrap();
    }
    docs.sort_by(|a, b| (b.created_at_us, &b.uuid).cmp(&(a.created_at_us, &a.uuid)));
    let expected: Vec<String> = docs.iter().map(|d| d.uuid.clone()).collect();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = storage.list(&json!({"limit": 7, "after": after})).unwrap();
        pages += 1;
        let uuids: Vec<String> = serde_json::from_value(page["uuids"].clone()).unwrap();
        assert!(uuids.len() <= 7);
        seen.extend(uuids);
        match page["next"].as_str() {
            Some(next) => {
                assert!(!next.contains("2024"), "the cursor is opaque: {next}");
                after = Some(next.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 4, "25 in pages of 7, without an empty last page");

    // The default page holds everything here; a cursor survives the deletion of its row.
    let all = storage.list(&json!({})).unwrap();
    assert_eq!(all["uuids"].as_array().unwrap().len(), 25);
    assert!(all["next"].is_null());
    let first = storage.list(&json!({"limit": 5})).unwrap();
    let cursor = first["next"].as_str().unwrap().to_owned();
    storage.delete(&expected[4]).unwrap();
    let rest = storage
        .list(&json!({"limit": 100, "after": cursor}))
        .unwrap();
    let rest: Vec<String> = serde_json::from_value(rest["uuids"].clone()).unwrap();
    assert_eq!(rest, expected[5..]);

    let err = storage
        .list(&json!({"after": "2024-03-01T12:00:00Z/some-uuid"}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT);
    assert!(err.message.contains("cursor"), "{err}");
}

#[test]
fn query_finds_vcons_by_party() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let docs = fake_docs(200);
    let records: Vec<_> = docs.iter().map(Doc::record).collect();
    storage.save_many(&records).unwrap();
    // A party from the data set, and what every document says about it.
    let value: serde_json::Value = serde_json::from_slice(&docs[17].json).unwrap();
    let party = &value["parties"][0];
    let tel = party["tel"].as_str().unwrap();
    let name = party["name"].as_str().unwrap();
    let expected_by = |pred: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
        docs.iter()
            .filter(|d| {
                let v: serde_json::Value = serde_json::from_slice(&d.json).unwrap();
                v["parties"].as_array().unwrap().iter().any(pred)
            })
            .map(|d| d.uuid.clone())
            .collect()
    };
    let mut by_tel = storage.query(&json!({ "tel": tel })).unwrap();
    let mut expected = expected_by(&|p| p["tel"] == tel);
    by_tel.sort();
    expected.sort();
    assert_eq!(by_tel, expected);
    assert!(by_tel.contains(&docs[17].uuid));

    // Every given field must match the same party.
    let both = storage.query(&json!({ "tel": tel, "name": name })).unwrap();
    assert!(both.contains(&docs[17].uuid));
    let mismatched = storage
        .query(&json!({ "tel": tel, "name": "nobody by this name" }))
        .unwrap();
    assert!(mismatched.is_empty());
    let limited = storage.query(&json!({ "tel": tel, "limit": 1 })).unwrap();
    assert_eq!(limited.len(), 1);

    let err = storage.query(&json!({})).unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT);
}

#[test]
fn query_survives_odd_parties() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let odd = Doc::synthetic(&uuid(1), "2024-01-01T00:00:00Z").with_json(
        br#"{"uuid":"00000000-0000-4000-8000-000000000001","parties":["bare string",3,null,{"tel":"+1"}]}"#,
    );
    let none = Doc::synthetic(&uuid(2), "2024-01-01T00:00:00Z")
        .with_json(br#"{"uuid":"00000000-0000-4000-8000-000000000002"}"#);
    storage.save(&odd.record()).unwrap();
    storage.save(&none.record()).unwrap();
    assert_eq!(storage.query(&json!({"tel": "+1"})).unwrap(), vec![uuid(1)]);
    assert!(storage.query(&json!({"name": "x"})).unwrap().is_empty());
}

#[test]
fn status_describes_the_file() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    storage
        .save(&Doc::synthetic(&uuid(1), "2024-01-01T00:00:00Z").record())
        .unwrap();
    let status = storage.status().unwrap();
    assert_eq!(status["path"], json!(path.display().to_string()));
    assert_eq!(status["table"], "vcons");
    assert_eq!(status["rows"], 1);
    assert_eq!(status["journal_mode"], "wal");
    assert_eq!(status["schema_version"], 1);
    assert_eq!(status["provisioned"], true);
    assert!(status["page_count"].as_i64().unwrap() > 0);
    assert!(status["sqlite_version"].as_str().unwrap().starts_with("3."));
}
