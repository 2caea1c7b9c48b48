//! What the plugin does beyond the shared contract: gzip, headers, batches, listing, status,
//! the local layout on disk, and credentials from the environment.

use plugin_loader::ErrorKind;
use serde_json::json;

use crate::fixtures::{fake_docs, file_url, large_doc, open, open_s3, tree, Doc, Raw};
use crate::s3server;

#[test]
fn gzip_is_marked_and_read_back_by_any_configuration() {
    let Some(server) = s3server::server() else {
        return;
    };
    let bucket = server.bucket("gzip");
    let mut options = server.options(&bucket, "z");
    options["compression"] = json!("gzip");
    let gzip = open(&options);
    let doc = large_doc();
    gzip.save(&doc.record()).unwrap();
    let raw = Raw::s3(server, &bucket);
    let key = format!("z/{}/{}.vcon", doc.python_date_folder(), doc.uuid);
    let (body, (content_type, encoding)) = raw.get_with_headers(&key).unwrap();
    assert!(body.starts_with(&[0x1f, 0x8b]), "stored gzip");
    assert!(
        body.len() < doc.json.len() / 3,
        "{} of {}",
        body.len(),
        doc.json.len()
    );
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(gzip.get(&doc.uuid).unwrap().unwrap(), doc.json);
    // A storage without compression on the same prefix reads it too, and the other way round.
    options["compression"] = json!("none");
    let plain = open(&options);
    assert_eq!(plain.get(&doc.uuid).unwrap().unwrap(), doc.json);
    let other = &fake_docs(1)[0];
    plain.save(&other.record()).unwrap();
    assert_eq!(gzip.get(&other.uuid).unwrap().unwrap(), other.json);
}

#[test]
fn batches_answer_in_order_with_bounded_concurrency() {
    let Some(server) = s3server::server() else {
        return;
    };
    let bucket = server.bucket("batch");
    let mut options = server.options(&bucket, "");
    options["max_concurrency"] = json!(4);
    let storage = open(&options);
    let docs = fake_docs(120);
    let records: Vec<_> = docs.iter().map(Doc::record).collect();
    let results = storage.save_many(&records).unwrap();
    assert_eq!(results.len(), 120);
    assert!(results.iter().all(Result::is_ok));
    let mut uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    let missing = crate::fixtures::fresh_uuid();
    uuids.insert(7, &missing);
    let got = storage.get_many(&uuids).unwrap();
    assert_eq!(got[7], None);
    for (i, doc) in docs.iter().enumerate() {
        let at = if i < 7 { i } else { i + 1 };
        assert_eq!(got[at].as_deref(), Some(doc.json.as_slice()), "{i}");
    }
    let removed = storage.delete_many(&uuids).unwrap();
    assert_eq!(removed.iter().filter(|r| **r).count(), 120);
    assert!(!removed[7]);
    assert_eq!(storage.count().unwrap(), 0);
}

#[test]
fn list_pages_in_uuid_order_on_s3_and_on_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut storages = vec![open(&json!({ "url": file_url(dir.path()) }))];
    if let Some(server) = s3server::server() {
        storages.push(open_s3(server, "list", "l").0);
    }
    for storage in storages {
        let docs = fake_docs(23);
        for doc in &docs {
            storage.save(&doc.record()).unwrap();
        }
        let mut expected: Vec<String> = docs.iter().map(|d| d.uuid.clone()).collect();
        expected.sort();
        let mut seen = Vec::new();
        let mut after = serde_json::Value::Null;
        loop {
            let page = storage
                .list(&json!({ "limit": 5, "after": after }))
                .unwrap();
            let uuids = page["uuids"].as_array().unwrap();
            assert!(uuids.len() <= 5);
            seen.extend(uuids.iter().map(|u| u.as_str().unwrap().to_owned()));
            match &page["next"] {
                serde_json::Value::Null => break,
                next => after = next.clone(),
            }
        }
        assert_eq!(seen, expected);
        let err = storage
            .list(&json!({ "limit": 5, "after": "../etc" }))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    }
}

#[test]
fn status_reports_the_store() {
    let Some(server) = s3server::server() else {
        return;
    };
    let (storage, bucket) = open_s3(server, "status", "s");
    let status = storage.status().unwrap();
    assert_eq!(status["store"], "s3", "{status}");
    assert_eq!(status["reachable"], true, "{status}");
    assert_eq!(status["prefix"], "s", "{status}");
    let location = status["location"].as_str().unwrap();
    assert!(location.contains(&bucket), "{status}");
    assert!(
        !status.to_string().contains("\"test\""),
        "no credentials: {status}"
    );
}

#[test]
fn the_local_directory_holds_the_same_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let storage = open(&json!({ "url": file_url(&root) }));
    let doc = Doc::synthetic(
        "0195b7a2-69ef-8e73-9dd8-dd37220d739c",
        "2025-03-05T23:30:00-05:00",
    );
    storage.save(&doc.record()).unwrap();
    assert_eq!(
        tree(&root),
        [
            "2025/03/05/0195b7a2-69ef-8e73-9dd8-dd37220d739c.vcon",
            "lookup/0195b7a2-69ef-8e73-9dd8-dd37220d739c.txt",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(root.join("lookup/0195b7a2-69ef-8e73-9dd8-dd37220d739c.txt"))
            .unwrap(),
        "2025/03/05"
    );
    assert_eq!(storage.status().unwrap()["store"], "local");
    // Deleting prunes the emptied date folders.
    assert!(storage.delete(&doc.uuid).unwrap());
    assert_eq!(tree(&root), Vec::<String>::new());
    assert!(!root.join("2025").exists());
}

#[test]
fn uuids_that_are_not_canonical_never_become_keys() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(&json!({ "url": file_url(dir.path()) }));
    for bad in [
        "../../etc/passwd",
        "0195B7A2-69EF-8E73-9DD8-DD37220D739C",
        "x",
    ] {
        let err = storage.get(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{bad}: {err}");
        assert_eq!(
            storage.delete(bad).unwrap_err().kind,
            ErrorKind::INVALID_INPUT
        );
        assert_eq!(
            storage.exists(bad).unwrap_err().kind,
            ErrorKind::INVALID_INPUT
        );
        let doc = Doc::synthetic(
            "0195b7a2-69ef-8e73-9dd8-dd37220d739c",
            "2025-01-01T00:00:00Z",
        );
        let record = plugin_loader::VconRecord::new(bad, &doc.json, doc.created_at_us);
        assert_eq!(
            storage.save(&record).unwrap_err().kind,
            ErrorKind::INVALID_INPUT
        );
    }
    assert!(tree(dir.path()).is_empty());
}

#[test]
fn bad_options_are_refused_at_open_naming_the_option() {
    for (options, named) in [
        (json!({}), "aws_bucket"),
        (json!({ "aws_bucket": "b", "s3_path": "/abs" }), "s3_path"),
        (
            json!({ "url": "s3://b/p", "aws_bucket": "b" }),
            "aws_bucket",
        ),
        (
            json!({ "url": "file:///tmp/x", "compression": "zstd" }),
            "compression",
        ),
        (
            json!({ "url": "file:///tmp/x", "max_concurrency": 0 }),
            "max_concurrency",
        ),
        (json!({ "url": "file:///tmp/x", "bucket": "b" }), "bucket"),
        (
            json!({ "aws_bucket": "b", "store_options": { "nonsense": "1" } }),
            "store_options.nonsense",
        ),
    ] {
        let err = crate::fixtures::library()
            .open(&options.to_string())
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(err.contains(named), "{options}: {err}");
    }
}

/// Runs the test named `child` in a child process of this test binary with `env` set: the
/// plugin reads the environment with its own copy of std, so setting variables in this
/// multi-threaded process could race with another test's plugin reading them.
fn in_child(child: &str, env: &[(&str, &str)]) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([child, "--exact", "--nocapture", "--test-threads=1"])
        .env("VCON_OBJECT_STORE_CHILD", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("1 passed"),
        "{child} failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn credentials_and_endpoint_come_from_the_environment() {
    let Some(server) = s3server::server() else {
        return;
    };
    let bucket = server.bucket("env");
    in_child(
        "operations::env_child",
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_ENDPOINT", server.endpoint()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("VCON_TEST_BUCKET", &bucket),
        ],
    );
    // What the child saved through environment credentials is there.
    let raw = Raw::s3(server, &bucket);
    assert_eq!(raw.keys().len(), 2);
}

/// The child half of `credentials_and_endpoint_come_from_the_environment`: only the bucket is
/// in the options.
#[test]
fn env_child() {
    if std::env::var_os("VCON_OBJECT_STORE_CHILD").is_none() {
        return;
    }
    let bucket = std::env::var("VCON_TEST_BUCKET").unwrap();
    let storage = open(&json!({ "aws_bucket": bucket }));
    let doc = &fake_docs(1)[0];
    storage.save(&doc.record()).unwrap();
    assert_eq!(storage.get(&doc.uuid).unwrap().unwrap(), doc.json);
}
