//! Batches, listing, searching, status, and what lands in each column.

use serde_json::json;

use crate::fixtures::{assert_same, fake_docs, large_doc, new_uuid, open, server, Direct, Doc};

#[test]
fn a_batch_of_a_thousand_real_documents_is_stored() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    let fake = fake_docs(usize::MAX);
    assert!(
        fake.len() >= 600,
        "the fake set has {} documents",
        fake.len()
    );
    // 601 documents cycled with fresh uuids to fill 1,000.
    let docs: Vec<Doc> = (0..1000)
        .map(|i| fake[i % fake.len()].with_uuid(&new_uuid()))
        .collect();
    let records: Vec<_> = docs.iter().map(Doc::record).collect();
    let results = storage.save_many(&records).unwrap();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(storage.count().unwrap(), 1000);
    let uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    let got = storage.get_many(&uuids).unwrap();
    for (doc, stored) in docs.iter().zip(got) {
        assert_same(doc, stored);
    }
    // The large recorded call, in a batch of its own copies.
    let large = large_doc();
    let copies: Vec<Doc> = (0..3).map(|_| large.with_uuid(&new_uuid())).collect();
    let records: Vec<_> = copies.iter().map(Doc::record).collect();
    assert!(storage
        .save_many(&records)
        .unwrap()
        .iter()
        .all(Result::is_ok));
    assert_same(&copies[2], storage.get(&copies[2].uuid).unwrap());
}

#[test]
fn a_uuid_twice_in_a_batch_keeps_the_last_version() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    let uuid = new_uuid();
    let first = Doc::synthetic(&uuid, "2024-01-02T03:04:05Z");
    let mut second = Doc::synthetic(&uuid, "2024-01-02T03:04:06Z");
    second.subject = Some("second".into());
    let other = Doc::synthetic(&new_uuid(), "2024-01-02T03:04:07Z");
    let results = storage
        .save_many(&[first.record(), other.record(), second.record()])
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_same(&second, storage.get(&uuid).unwrap());
    assert_eq!(storage.count().unwrap(), 2);
    let subject = Direct::connect().text(
        &format!(
            "SELECT subject FROM \"{}\" WHERE id = $1::text::uuid",
            table.name
        ),
        &[&uuid],
    );
    assert_eq!(subject.as_deref(), Some("second"));

    // Deleting a uuid twice in one batch answers true once, as deleting in order would.
    let removed = storage
        .delete_many(&[&uuid, &new_uuid(), &uuid, &other.uuid])
        .unwrap();
    assert_eq!(removed, [true, false, false, true]);
    assert_eq!(storage.save_many(&[]).unwrap().len(), 0);
    assert_eq!(storage.get_many(&[]).unwrap().len(), 0);
}

#[test]
fn columns_hold_what_the_python_module_put_there() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    let mut doc = Doc::synthetic(&new_uuid(), "2024-03-01T14:00:05.123456+02:00");
    doc.subject = Some("a subject".into());
    storage.save(&doc.record()).unwrap();
    let direct = Direct::connect();
    let row = &direct.query(
        &format!(
            "SELECT vcon, uuid::text, subject,
                    created_at = '2024-03-01T12:00:05.123456Z'::timestamptz,
                    updated_at > now() - interval '1 minute',
                    vcon_json ->> 'uuid', vcon_json -> 'unknown_key_kept' -> 'x' ->> 2
             FROM \"{}\" WHERE id = $1::text::uuid",
            table.name
        ),
        &[&doc.uuid],
    )[0];
    assert_eq!(row.get::<_, String>(0), "0.0.1");
    assert_eq!(row.get::<_, String>(1), doc.uuid);
    assert_eq!(row.get::<_, String>(2), "a subject");
    assert!(
        row.get::<_, bool>(3),
        "created_at is not the document's instant"
    );
    assert!(
        row.get::<_, bool>(4),
        "updated_at is not the time of the write"
    );
    assert_eq!(row.get::<_, String>(5), doc.uuid);
    assert_eq!(row.get::<_, String>(6), "3");

    // A re-save moves updated_at.
    let first: String = direct
        .text(
            &format!(
                "SELECT updated_at::text FROM \"{}\" WHERE id = $1::text::uuid",
                table.name
            ),
            &[&doc.uuid],
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    storage.save(&doc.record()).unwrap();
    let second: String = direct
        .text(
            &format!(
                "SELECT updated_at::text FROM \"{}\" WHERE id = $1::text::uuid",
                table.name
            ),
            &[&doc.uuid],
        )
        .unwrap();
    assert_ne!(first, second);
    // A document without a version has a NULL `vcon`.
    let bare_uuid = new_uuid();
    let bare = Doc::from_json(
        json!({"uuid": bare_uuid, "created_at": "2024-01-01T00:00:00Z"})
            .to_string()
            .into_bytes(),
    );
    storage.save(&bare.record()).unwrap();
    let version = direct.text(
        &format!(
            "SELECT vcon FROM \"{}\" WHERE id = $1::text::uuid",
            table.name
        ),
        &[&bare_uuid],
    );
    assert_eq!(version, None);
}

#[test]
fn list_pages_newest_first_and_query_finds_parties() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    // 25 documents, one second apart, plus two at the same instant (the id breaks the tie).
    let mut docs: Vec<Doc> = (0..25)
        .map(|i| Doc::synthetic(&new_uuid(), &format!("2024-01-01T00:00:{i:02}Z")))
        .collect();
    docs.push(Doc::synthetic(&new_uuid(), "2024-01-01T00:00:10Z"));
    for doc in &docs {
        storage.save(&doc.record()).unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = storage.list(&json!({"limit": 7, "after": after})).unwrap();
        let uuids = page["uuids"].as_array().unwrap();
        assert!(uuids.len() <= 7);
        seen.extend(uuids.iter().map(|u| u.as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), docs.len());
    assert_eq!(seen[0], docs[24].uuid);
    assert_eq!(seen[seen.len() - 1], docs[0].uuid);
    let err = storage.list(&json!({"after": "junk"})).unwrap_err();
    assert_eq!(err.kind, plugin_loader::ErrorKind::INVALID_INPUT, "{err}");

    let ann = storage
        .query(&json!({"tel": "+15551234567", "name": "Ann"}))
        .unwrap();
    assert_eq!(ann.len(), docs.len());
    assert_eq!(ann[0], docs[24].uuid);
    let limited = storage.query(&json!({"name": "Ann", "limit": 3})).unwrap();
    assert_eq!(limited.len(), 3);
    // Both fields must be on the same party.
    assert!(storage
        .query(&json!({"tel": "+15551234567", "name": "Bob"}))
        .unwrap()
        .is_empty());
    let err = storage.query(&json!({})).unwrap_err();
    assert_eq!(err.kind, plugin_loader::ErrorKind::INVALID_INPUT, "{err}");
}

#[test]
fn status_reports_pool_rows_and_server() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    for _ in 0..3 {
        storage
            .save(&Doc::synthetic(&new_uuid(), "2024-01-01T00:00:00Z").record())
            .unwrap();
    }
    let status = storage.status().unwrap();
    assert_eq!(status["rows"], 3, "{status}");
    assert_eq!(status["table"], table.name.as_str(), "{status}");
    assert_eq!(status["provisioned"], true, "{status}");
    assert_eq!(status["schema_version"], 1, "{status}");
    assert_eq!(status["adopted"], false, "{status}");
    assert_eq!(status["pool"]["max_size"], 10, "{status}");
    assert!(status["pool"]["size"].as_u64().unwrap() >= 1, "{status}");
    assert!(
        status["server_version"]
            .as_str()
            .unwrap()
            .chars()
            .next()
            .unwrap()
            .is_ascii_digit(),
        "{status}"
    );
    assert!(
        status["server"].as_str().unwrap().starts_with("PostgreSQL"),
        "{status}"
    );
    assert!(
        status["target"]
            .as_str()
            .unwrap()
            .contains("/test as postgres"),
        "{status}"
    );
    assert_eq!(storage.clear().unwrap(), 3);
    assert_eq!(storage.count().unwrap(), 0);
}

#[test]
fn many_threads_share_the_pool() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&crate::fixtures::with(
        server.options(&table.name),
        json!({"pool_size": 3}),
    ));
    let docs: Vec<Vec<Doc>> = (0..8)
        .map(|_| {
            (0..40)
                .map(|_| Doc::synthetic(&new_uuid(), "2024-01-01T00:00:00Z"))
                .collect()
        })
        .collect();
    std::thread::scope(|scope| {
        for batch in &docs {
            let storage = &storage;
            scope.spawn(move || {
                for doc in batch {
                    storage.save(&doc.record()).unwrap();
                }
            });
        }
    });
    assert_eq!(storage.count().unwrap(), 320);
    assert_eq!(storage.status().unwrap()["pool"]["size"], 3);
}
