//! Compatibility with the Python server's `storage.s3`: objects it writes are read by the
//! plugin, and objects the plugin writes are where it looks, byte for byte in the key.

use std::process::Command;

use crate::fixtures::{fake_docs, fresh_uuid, open, open_s3, Doc, Raw};
use crate::s3server::{self, S3Server};

/// Runs `python_s3.py` (boto3, the Python module's layout) and answers its output, or `None`
/// when boto3 is missing (which the S3 server being there from pip makes unlikely).
fn python_s3(server: &S3Server, bucket: &str, s3_path: &str, args: &[&str]) -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/python_s3.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = Command::new(&python)
        .arg(script)
        .args([server.endpoint(), bucket, s3_path])
        .args(args)
        .output()
        .unwrap();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named 'boto3'") && !s3server::required() {
            eprintln!("\n*** SKIPPING the boto3 round trip: boto3 is not installed\n");
            return None;
        }
        panic!("{python} {script} {args:?} failed: {stderr}");
    }
    Some(String::from_utf8(output.stdout).unwrap())
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn objects_written_in_the_python_layout_are_read() {
    let Some(server) = s3server::server() else {
        return;
    };
    let (storage, bucket) = open_s3(server, "py-writes", "archive/");
    let raw = Raw::s3(server, &bucket);
    let docs = fake_docs(20);
    for doc in &docs {
        // Exactly the module's two PUTs: the document with no headers, then the pointer.
        let date = doc.python_date_folder();
        raw.put(&format!("archive/{date}/{}.vcon", doc.uuid), &doc.json);
        raw.put(&format!("archive/lookup/{}.txt", doc.uuid), date.as_bytes());
    }
    for doc in &docs {
        assert_eq!(storage.get(&doc.uuid).unwrap().unwrap(), doc.json);
        assert!(storage.exists(&doc.uuid).unwrap());
    }
    let uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    let got = storage.get_many(&uuids).unwrap();
    for (doc, got) in docs.iter().zip(got) {
        assert_eq!(got.unwrap(), doc.json);
    }
    assert_eq!(storage.count().unwrap(), 20);
    // Deleting removes both of the module's keys.
    assert!(storage.delete(&docs[0].uuid).unwrap());
    let keys = raw.keys();
    assert!(!keys.iter().any(|k| k.contains(&docs[0].uuid)), "{keys:?}");
    assert_eq!(keys.len(), 2 * 19);
}

#[test]
fn the_plugin_writes_where_the_python_module_looks() {
    let Some(server) = s3server::server() else {
        return;
    };
    let (storage, bucket) = open_s3(server, "plugin-writes", "archive");
    let raw = Raw::s3(server, &bucket);
    let mut docs = fake_docs(5);
    // Late evening west of Greenwich is already tomorrow in UTC: filed under the local date.
    docs.push(Doc::synthetic(&fresh_uuid(), "2024-12-31T23:30:00-08:00"));
    docs.push(Doc::synthetic(&fresh_uuid(), "2024-01-01T00:15:00+09:00"));
    for doc in &docs {
        storage.save(&doc.record()).unwrap();
    }
    for doc in &docs {
        let date = doc.python_date_folder();
        let pointer = raw
            .get(&format!("archive/lookup/{}.txt", doc.uuid))
            .unwrap();
        assert_eq!(String::from_utf8(pointer).unwrap(), date);
        let (body, (content_type, encoding)) = raw
            .get_with_headers(&format!("archive/{date}/{}.vcon", doc.uuid))
            .unwrap();
        assert_eq!(body, doc.json, "stored verbatim");
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(encoding, None);
    }
    assert_eq!(docs[5].python_date_folder(), "2024/12/31");
    assert_eq!(docs[6].python_date_folder(), "2024/01/01");
    // Nothing else was written.
    assert_eq!(raw.keys().len(), 2 * docs.len());
}

#[test]
fn boto3_and_the_plugin_read_each_other() {
    let Some(server) = s3server::server() else {
        return;
    };
    for s3_path in ["", "tenant-a/vcons"] {
        let (storage, bucket) = open_s3(server, "boto3", s3_path);
        let docs = fake_docs(12);
        let (python_half, plugin_half) = docs.split_at(6);
        // Python saves, the plugin reads.
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<String> = python_half
            .iter()
            .map(|doc| {
                let path = dir.path().join(format!("{}.json", doc.uuid));
                std::fs::write(&path, &doc.json).unwrap();
                path.display().to_string()
            })
            .collect();
        let mut args = vec!["save"];
        args.extend(files.iter().map(String::as_str));
        if python_s3(server, &bucket, s3_path, &args).is_none() {
            return;
        }
        for doc in python_half {
            let got = storage.get(&doc.uuid).unwrap().expect("python-saved vCon");
            assert_eq!(json(&got), json(&doc.json));
        }
        // The plugin saves, Python reads.
        for doc in plugin_half {
            storage.save(&doc.record()).unwrap();
            let out = python_s3(server, &bucket, s3_path, &["get", &doc.uuid]).unwrap();
            assert_eq!(json(out.as_bytes()), json(&doc.json), "{s3_path:?}");
        }
        // Python deletes what the plugin saved, and the other way round.
        let out = python_s3(server, &bucket, s3_path, &["delete", &plugin_half[0].uuid]).unwrap();
        assert_eq!(out.trim(), "True");
        assert_eq!(storage.get(&plugin_half[0].uuid).unwrap(), None);
        assert!(storage.delete(&python_half[0].uuid).unwrap());
        let out = python_s3(server, &bucket, s3_path, &["get", &python_half[0].uuid]).unwrap();
        assert_eq!(out.trim(), "null");
        assert_eq!(storage.count().unwrap(), 10);
    }
}

#[test]
fn documents_without_a_pointer_are_found_or_repaired() {
    let Some(server) = s3server::server() else {
        return;
    };
    let (storage, bucket) = open_s3(server, "no-pointer", "p");
    let raw = Raw::s3(server, &bucket);
    let docs = fake_docs(3);
    // Saved by the module before it wrote pointers: dated, no pointer. Unreachable by uuid...
    let dated = &docs[0];
    let date = dated.python_date_folder();
    raw.put(&format!("p/{date}/{}.vcon", dated.uuid), &dated.json);
    assert_eq!(storage.get(&dated.uuid).unwrap(), None);
    assert!(!storage.exists(&dated.uuid).unwrap());
    // ...until provision writes the missing pointers, once.
    let report = storage.provision(false).unwrap();
    assert_eq!(report["pointers_written"], 1, "{report}");
    assert_eq!(storage.get(&dated.uuid).unwrap().unwrap(), dated.json);
    assert_eq!(
        raw.get(&format!("p/lookup/{}.txt", dated.uuid)).unwrap(),
        date.as_bytes()
    );
    let report = storage.provision(false).unwrap();
    assert_eq!(report["pointers_written"], 0, "{report}");
    // The flat key the module's old `get` read is the fallback when there is no pointer.
    let flat = &docs[1];
    raw.put(&format!("p/{}.vcon", flat.uuid), &flat.json);
    assert_eq!(storage.get(&flat.uuid).unwrap().unwrap(), flat.json);
    assert!(storage.exists(&flat.uuid).unwrap());
    assert!(storage.delete(&flat.uuid).unwrap());
    assert_eq!(raw.get(&format!("p/{}.vcon", flat.uuid)), None);
    assert!(!storage.delete(&flat.uuid).unwrap());
    // Other objects under the prefix are never touched, even by clear.
    raw.put("p/README.txt", b"not a vCon");
    raw.put("p/lookup/notes.txt", b"not a pointer");
    assert_eq!(storage.clear().unwrap(), 1);
    assert_eq!(raw.keys(), ["p/README.txt", "p/lookup/notes.txt"]);
}

#[test]
fn a_python_style_config_opens_as_it_is() {
    let Some(server) = s3server::server() else {
        return;
    };
    let bucket = server.bucket("config");
    // The module's options exactly as a Python config.yml has them (trailing slash included).
    let storage = open(&serde_json::json!({
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "aws_bucket": bucket,
        "aws_region": "us-east-1",
        "endpoint_url": format!("{}/", server.endpoint()),
        "s3_path": "vcons/",
    }));
    let doc = &fake_docs(1)[0];
    storage.save(&doc.record()).unwrap();
    let raw = Raw::s3(server, &bucket);
    assert!(raw.get(&format!("vcons/lookup/{}.txt", doc.uuid)).is_some());
}
