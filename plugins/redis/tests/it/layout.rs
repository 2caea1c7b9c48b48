//! What lands in Redis, read back with a plain client: the key `{prefix}:{uuid}`, a string
//! holding the document's bytes exactly, the time to live; keys the Python module wrote are read;
//! prefixes keep storages apart, glob characters in them included.

use serde_json::json;

use crate::fixtures::{assert_same, large_doc, new_uuid, open, server, with, Direct, Doc, Prefix};

#[test]
fn a_save_is_a_string_under_prefix_colon_uuid_with_the_ttl() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let storage = open(&with(server.options(&prefix), json!({"expires": 3600})));
    let doc = Doc::synthetic();
    storage.save(&doc.record()).unwrap();

    let mut direct = Direct::connect();
    let key = format!("{}:{}", prefix.name, doc.uuid);
    assert_eq!(direct.keys_under(&prefix.name), std::slice::from_ref(&key));
    assert_eq!(direct.type_of(&key), "string");
    // The bytes as the host passed them: not re-encoded, not reformatted.
    assert_eq!(direct.get(&key).unwrap(), doc.json);
    let ttl = direct.ttl(&key);
    assert!((3590..=3600).contains(&ttl), "TTL {ttl}");

    // A save resets the clock, as the Python module's SET ... EX does.
    redis::cmd("EXPIRE")
        .arg(&key)
        .arg(10)
        .query::<()>(&mut direct.conn)
        .unwrap();
    storage.save(&doc.record()).unwrap();
    let ttl = direct.ttl(&key);
    assert!((3590..=3600).contains(&ttl), "TTL after re-save {ttl}");
}

#[test]
fn the_default_ttl_is_seven_days_and_zero_means_none() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let mut direct = Direct::connect();

    let storage = open(&server.options(&prefix));
    let doc = Doc::synthetic();
    storage.save(&doc.record()).unwrap();
    let ttl = direct.ttl(&prefix.key(&doc.uuid));
    assert!((604_790..=604_800).contains(&ttl), "TTL {ttl}");
    // Batches too.
    let batch: Vec<Doc> = (0..3).map(|_| Doc::synthetic()).collect();
    let records: Vec<_> = batch.iter().map(Doc::record).collect();
    assert!(storage
        .save_many(&records)
        .unwrap()
        .iter()
        .all(Result::is_ok));
    for doc in &batch {
        let ttl = direct.ttl(&prefix.key(&doc.uuid));
        assert!((604_790..=604_800).contains(&ttl), "TTL {ttl}");
    }

    // expires: 0 keeps vCons until deleted, and a re-save removes an earlier TTL.
    let forever = open(&with(server.options(&prefix), json!({"expires": 0})));
    forever.save(&doc.record()).unwrap();
    assert_eq!(direct.ttl(&prefix.key(&doc.uuid)), -1);
    assert!(forever
        .save_many(&records)
        .unwrap()
        .iter()
        .all(Result::is_ok));
    for doc in &batch {
        assert_eq!(direct.ttl(&prefix.key(&doc.uuid)), -1);
    }
}

#[test]
fn keys_the_python_module_wrote_are_read() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let mut direct = Direct::connect();
    // What redis_storage.save does: SET {prefix}:{uuid} json.dumps(vcon) EX expires.
    let doc = Doc::synthetic();
    let python_json =
        serde_json::to_string(&serde_json::from_slice::<serde_json::Value>(&doc.json).unwrap())
            .unwrap()
            .replace(',', ", ")
            .replace(':', ": ");
    direct.set(
        &prefix.key(&doc.uuid),
        python_json.as_bytes(),
        Some(604_800),
    );

    let storage = open(&server.options(&prefix));
    assert_eq!(
        storage.get(&doc.uuid).unwrap().unwrap(),
        python_json.as_bytes()
    );
    assert!(storage.exists(&doc.uuid).unwrap());
    assert_eq!(storage.count().unwrap(), 1);
    let page = storage.list(&json!({})).unwrap();
    assert_eq!(page["uuids"], json!([doc.uuid]));
    assert!(storage.delete(&doc.uuid).unwrap());
    assert_eq!(direct.get(&prefix.key(&doc.uuid)), None);
}

#[test]
fn large_documents_are_stored_verbatim() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let storage = open(&server.options(&prefix));
    let large = large_doc().with_uuid(&new_uuid());
    storage.save(&large.record()).unwrap();
    assert_same(&large, storage.get(&large.uuid).unwrap());
    assert_eq!(
        Direct::connect().get(&prefix.key(&large.uuid)).unwrap(),
        large.json
    );
}

#[test]
fn prefixes_keep_storages_apart() {
    let Some(server) = server() else { return };
    let a = server.fresh_prefix();
    // A prefix that extends the other one: `{a}:sub` keys look like `{a}:*` to a naive pattern.
    let b = Prefix::new(&crate::fixtures::url(), &format!("{}:sub", a.name));
    let storage_a = open(&server.options(&a));
    let storage_b = open(&server.options(&b));
    let doc_a = Doc::synthetic();
    let doc_b = Doc::synthetic();
    storage_a.save(&doc_a.record()).unwrap();
    storage_b.save(&doc_b.record()).unwrap();
    // Something else under a's prefix that is not a vCon key of a.
    let mut direct = Direct::connect();
    direct.set(&format!("{}:not-a-uuid", a.name), b"other program", None);

    assert_eq!(storage_a.count().unwrap(), 1);
    assert_eq!(storage_b.count().unwrap(), 1);
    assert_eq!(storage_a.get(&doc_b.uuid).unwrap(), None);
    assert_eq!(
        storage_a.list(&json!({})).unwrap()["uuids"],
        json!([doc_a.uuid])
    );
    assert_eq!(storage_a.clear().unwrap(), 1);
    assert_eq!(storage_b.count().unwrap(), 1);
    assert_eq!(
        direct.get(&format!("{}:not-a-uuid", a.name)).as_deref(),
        Some(&b"other program"[..])
    );
    assert_same(&doc_b, storage_b.get(&doc_b.uuid).unwrap());
}

#[test]
fn glob_characters_in_a_prefix_match_only_themselves() {
    let Some(server) = server() else { return };
    let base = server.fresh_prefix();
    // `*` would match every key of `{base}_x`, and `[ab]` would match `a` or `b`.
    let glob = Prefix::new(&crate::fixtures::url(), &format!("{}*[ab]?", base.name));
    let plain = Prefix::new(&crate::fixtures::url(), &format!("{}_xaZ", base.name));
    let storage_glob = open(&server.options(&glob));
    let storage_plain = open(&server.options(&plain));
    let doc_glob = Doc::synthetic();
    let doc_plain = Doc::synthetic();
    storage_glob.save(&doc_glob.record()).unwrap();
    storage_plain.save(&doc_plain.record()).unwrap();

    assert_eq!(storage_glob.count().unwrap(), 1);
    assert_eq!(
        storage_glob.list(&json!({})).unwrap()["uuids"],
        json!([doc_glob.uuid])
    );
    assert_eq!(storage_glob.clear().unwrap(), 1);
    assert_same(&doc_plain, storage_plain.get(&doc_plain.uuid).unwrap());
    assert_eq!(storage_plain.count().unwrap(), 1);
}

#[test]
fn listing_pages_in_uuid_order_without_repeats() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let storage = open(&server.options(&prefix));
    let docs: Vec<Doc> = (0..25).map(|_| Doc::synthetic()).collect();
    let records: Vec<_> = docs.iter().map(Doc::record).collect();
    assert!(storage
        .save_many(&records)
        .unwrap()
        .iter()
        .all(Result::is_ok));
    let mut expected: Vec<String> = docs.iter().map(|d| d.uuid.clone()).collect();
    expected.sort();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = storage.list(&json!({"limit": 4, "after": after})).unwrap();
        let uuids: Vec<String> = serde_json::from_value(page["uuids"].clone()).unwrap();
        assert!(uuids.len() <= 4);
        seen.extend(uuids);
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    // A page exactly as long as what is left has no next page.
    let page = storage.list(&json!({"limit": 25})).unwrap();
    assert_eq!(page["uuids"].as_array().unwrap().len(), 25);
    assert!(page["next"].is_null(), "{page}");
    // The default page size covers a small storage.
    assert_eq!(
        storage.list(&json!({})).unwrap()["uuids"]
            .as_array()
            .unwrap()
            .len(),
        25
    );
}

#[test]
fn status_names_the_server_without_the_password() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let storage = open(&server.options(&prefix));
    let status = storage.status().unwrap();
    assert_eq!(status["reachable"], true, "{status}");
    assert_eq!(status["prefix"], prefix.name.as_str());
    assert!(status["database"].is_i64(), "{status}");
    assert!(!status["target"].as_str().unwrap().is_empty(), "{status}");
    assert_eq!(status["expires"], 604_800);
    assert!(status["redis_version"].is_string(), "{status}");
    assert!(status["pool"]["max_size"].as_u64().unwrap() >= 1);
}
