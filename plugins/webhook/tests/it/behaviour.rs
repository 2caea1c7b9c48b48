//! Requests on the wire, retries, time-outs and error kinds.

use std::time::{Duration, Instant};

use plugin_loader::{ErrorKind, VconRecord};
use serde_json::json;

use crate::open;
use crate::server::Api;

const UUID: &str = "018f3e2a-7b1c-7d2e-8f90-0123456789ab";

fn doc(uuid: &str) -> Vec<u8> {
    json!({"vcon": "0.0.1", "uuid": uuid, "created_at": "2024-03-01T12:00:00Z", "parties": [],
           "subject": "'; DROP TABLE x; --", "x-unknown": {"kept": true}})
    .to_string()
    .into_bytes()
}

fn record<'a>(uuid: &'a str, json: &'a [u8]) -> VconRecord<'a> {
    VconRecord::new(uuid, json, 1_709_294_400_000_000)
}

#[test]
fn requests_carry_the_document_the_token_and_the_headers() {
    let api = Api::start();
    api.require_token("s3cret");
    let storage = open(&json!({
        "base_url": api.base_url,
        "api_key": "s3cret",
        "headers": {"X-Tenant": "acme"},
    }));
    let json = doc(UUID);
    storage.save(&record(UUID, &json)).unwrap();
    assert_eq!(api.stored(UUID).as_deref(), Some(json.as_slice()));
    assert_eq!(storage.get(UUID).unwrap().as_deref(), Some(json.as_slice()));
    assert!(storage.exists(UUID).unwrap());
    assert!(storage.delete(UUID).unwrap());
    assert!(!storage.delete(UUID).unwrap());
    assert_eq!(storage.get(UUID).unwrap(), None);
    assert!(!storage.exists(UUID).unwrap());
    let seen = api.seen();
    let methods: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    let item = format!("/api/v1/vcons/{UUID}");
    assert_eq!(
        methods,
        vec![
            ("POST", "/api/v1/vcons"),
            ("GET", item.as_str()),
            ("GET", item.as_str()),
            ("DELETE", item.as_str()),
            ("DELETE", item.as_str()),
            ("GET", item.as_str()),
            ("GET", item.as_str()),
        ]
    );
    for request in &seen {
        assert_eq!(request.header("authorization"), Some("Bearer s3cret"));
        assert_eq!(request.header("x-tenant"), Some("acme"));
    }
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
}

#[test]
fn a_wrong_token_is_unauthorized_and_not_retried() {
    let api = Api::start();
    api.require_token("right");
    let storage = open(&json!({"base_url": api.base_url, "api_key": "wrong"}));
    let json = doc(UUID);
    let err = storage.save(&record(UUID, &json)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
    assert!(!err.message.contains("wrong"), "the key leaked: {err}");
    assert_eq!(api.seen().len(), 1);
}

#[test]
fn five_hundreds_then_success_is_a_success() {
    let api = Api::start();
    let storage = open(&json!({"base_url": api.base_url, "retries": 3}));
    api.fail_next(2);
    let json = doc(UUID);
    storage.save(&record(UUID, &json)).unwrap();
    assert_eq!(api.seen().len(), 3);
    assert_eq!(api.stored(UUID).as_deref(), Some(json.as_slice()));
    api.fail_next(1);
    assert_eq!(storage.get(UUID).unwrap().as_deref(), Some(json.as_slice()));
}

#[test]
fn five_hundreds_past_the_retries_are_unavailable() {
    let api = Api::start();
    let storage = open(&json!({"base_url": api.base_url, "retries": 1}));
    api.fail_next(5);
    let json = doc(UUID);
    let err = storage.save(&record(UUID, &json)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
    assert!(err.message.contains("500"), "{err}");
    assert_eq!(api.seen().len(), 2);
    assert_eq!(api.stored(UUID), None);
}

#[test]
fn a_hanging_server_times_out_as_unavailable() {
    let api = Api::start();
    let storage = open(&json!({"base_url": api.base_url, "timeout": 0.5, "retries": 1}));
    api.hang(Some(Duration::from_secs(3)));
    let started = Instant::now();
    let err = storage.get(UUID).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
    assert!(err.message.contains("timed out"), "{err}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    api.hang(None);
}

#[test]
fn other_client_errors_are_invalid_input_with_the_server_s_words() {
    let api = Api::start();
    let storage = open(&json!({"base_url": api.base_url}));
    let json = br#"{"vcon": "0.0.1"}"#;
    let err = storage.save(&record(UUID, json)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    assert!(
        err.message.contains("422") && err.message.contains("vCon has no uuid"),
        "{err}"
    );
    assert_eq!(api.seen().len(), 1, "a 4xx must not be retried");
}

#[test]
fn bad_uuids_never_reach_the_server() {
    let api = Api::start();
    let storage = open(&json!({"base_url": api.base_url}));
    for bad in [
        "../../admin",
        "x?y=1",
        "018f3e2a-7b1c-7d2e-8f90-0123456789a/",
    ] {
        assert_eq!(storage.get(bad).unwrap_err().kind, ErrorKind::INVALID_INPUT);
        assert_eq!(
            storage.delete(bad).unwrap_err().kind,
            ErrorKind::INVALID_INPUT
        );
    }
    assert!(api.seen().is_empty());
}

#[test]
fn an_unreachable_api_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let storage = open(&json!({"base_url": format!("http://127.0.0.1:{port}"), "retries": 1}));
    let json = doc(UUID);
    let err = storage.save(&record(UUID, &json)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
}

#[test]
fn options_are_checked_at_open() {
    let library = plugin_loader::PluginLibrary::load(&crate::plugin_path(), None).unwrap();
    for (options, word) in [
        (json!({}), "base_url"),
        (json!({"base_url": "ftp://x"}), "base_url"),
        (json!({"base_url": "http://h", "timeout": 0}), "timeout"),
        (
            json!({"base_url": "http://h", "webhook-urls": []}),
            "webhook-urls",
        ),
        (
            json!({"base_url": "http://h", "headers": {"bad header": "x"}}),
            "bad header",
        ),
    ] {
        let err = library
            .open(&options.to_string())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(word), "{options}: {err}");
    }
}
