//! What the conformance suite does not cover: tokens expiring or revoked mid-run, biscuits that
//! do not grant the operation, injection attempts, size limits, faults and time-outs.

use std::time::Duration;

use plugin_loader::{Capabilities, ErrorKind};
use serde_json::{json, Value};
use sxt_emulator::{Emulator, API_KEY};

use crate::fixtures::{
    create_table, doc, emulator, large_call, open, open_error, options_with_key, record,
    round_trip, uuid, TABLE,
};

fn with(mut options: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        options[k] = v.clone();
    }
    options
}

#[test]
fn a_token_expiring_mid_run_is_renewed_before_use() {
    let (emulator, keys) = emulator();
    emulator.set_token_ttl(Duration::from_millis(1200));
    let storage = open(&options_with_key(&emulator, &keys));
    storage.provision(false).unwrap();
    round_trip(&storage).unwrap();
    let logins = emulator.stats().auth_calls;
    assert!(logins >= 1);
    // Past the token's lifetime: the plugin renews it before sending, so nothing is refused.
    std::thread::sleep(Duration::from_millis(1500));
    round_trip(&storage).unwrap();
    assert!(emulator.stats().auth_calls > logins);
    // Several expiries in a row, with operations in between.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1000));
        round_trip(&storage).unwrap();
    }
    assert!(emulator.stats().auth_calls >= logins + 4);
    assert_eq!(
        emulator.stats().token_refusals,
        0,
        "a statement went out with an expired token"
    );
}

#[test]
fn a_revoked_token_is_renewed_once_on_401() {
    let (emulator, keys) = emulator();
    let storage = open(&options_with_key(&emulator, &keys));
    storage.provision(false).unwrap();
    round_trip(&storage).unwrap();
    emulator.revoke_tokens();
    round_trip(&storage).unwrap();
    let stats = emulator.stats();
    assert_eq!(stats.auth_calls, 2);
    assert_eq!(stats.token_refusals, 1);
}

#[test]
fn without_auto_reconnect_an_expired_token_is_unauthorized() {
    let (emulator, keys) = emulator();
    emulator.set_token_ttl(Duration::from_millis(600));
    let storage = open(&with(
        options_with_key(&emulator, &keys),
        json!({"auto_reconnect": false}),
    ));
    storage.provision(false).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let err = round_trip(&storage).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
    assert!(err.message.contains("auto_reconnect"), "{err}");
}

#[test]
fn a_read_with_only_a_write_biscuit_is_refused_as_unauthorized() {
    let (emulator, keys) = emulator();
    create_table(&emulator, &keys);
    let storage = open(&json!({
        "api_key": API_KEY,
        "table_name": TABLE,
        "write_biscuit": keys.biscuit(&["dml_insert", "dml_update", "dml_delete"], TABLE),
        "api_url": emulator.api_url(),
        "auth_url": emulator.auth_url(),
    }));
    let id = uuid();
    let json = doc(&id, None);
    storage.save(&record(&id, &json, None)).unwrap();
    let err = storage.get(&id).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
    assert!(err.message.contains("dql_select"), "{err}");
    assert!(err.message.contains("read biscuit"), "{err}");
    // It was stored all the same.
    let stored = emulator
        .query(&format!("SELECT UUID FROM {TABLE} WHERE UUID = '{id}'"))
        .unwrap();
    assert_eq!(stored.as_array().unwrap().len(), 1);
}

#[test]
fn a_write_with_a_read_biscuit_or_a_foreign_key_is_unauthorized() {
    let (emulator, keys) = emulator();
    create_table(&emulator, &keys);
    let other = sxt_emulator::TableKeys::generate();
    for write in [
        keys.biscuit(&["dql_select"], TABLE),
        other.biscuit(&["*"], TABLE),
        keys.biscuit(&["*"], "vcon.other"),
    ] {
        let storage = open(&json!({
            "api_key": API_KEY,
            "table_name": TABLE,
            "write_biscuit": write,
            "api_url": emulator.api_url(),
            "auth_url": emulator.auth_url(),
        }));
        let id = uuid();
        let json = doc(&id, None);
        let err = storage.save(&record(&id, &json, None)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
        assert!(err.message.contains("write biscuit"), "{err}");
    }
}

#[test]
fn sql_in_the_subject_is_stored_as_text() {
    let (emulator, keys) = emulator();
    let storage = open(&options_with_key(&emulator, &keys));
    storage.provision(false).unwrap();
    for subject in [
        "'; DROP TABLE x; --",
        "'); DELETE FROM VCON.VCONS; --",
        "it's \"quoted\" \\' back\\slash",
        "ünïcödé 😀\nnew line\ttab",
    ] {
        let id = uuid();
        let json = doc(&id, Some(subject));
        storage.save(&record(&id, &json, Some(subject))).unwrap();
        let stored = emulator
            .query(&format!(
                "SELECT SUBJECT, VCON_JSON, VCON FROM {TABLE} WHERE UUID = '{id}'"
            ))
            .unwrap();
        assert_eq!(stored[0]["SUBJECT"], json!(subject), "{subject}");
        assert_eq!(
            stored[0]["VCON_JSON"],
            json!(String::from_utf8(json.clone()).unwrap())
        );
        assert_eq!(stored[0]["VCON"], json!("0.0.1"));
        assert_eq!(storage.get(&id).unwrap().as_deref(), Some(json.as_slice()));
    }
    // Nothing was dropped or deleted.
    assert_eq!(storage.count().unwrap(), 4);
}

#[test]
fn a_vcon_over_the_varchar_limit_is_refused_before_any_request() {
    let (emulator, keys) = emulator();
    let storage = open(&options_with_key(&emulator, &keys));
    storage.provision(false).unwrap();
    let json = large_call();
    let value: Value = serde_json::from_slice(&json).unwrap();
    let id = value["uuid"].as_str().unwrap().to_owned();
    let chars = String::from_utf8(json.clone()).unwrap().chars().count();
    let before = emulator.stats().sql_calls;
    let err = storage.save(&record(&id, &json, None)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    assert!(
        err.message.contains(&format!("{chars} characters")),
        "{err}"
    );
    assert!(err.message.contains("65536"), "{err}");
    assert!(err.message.contains("too large"), "{err}");
    assert_eq!(emulator.stats().sql_calls, before);
    // In a batch, only that record fails.
    let small = uuid();
    let small_json = doc(&small, None);
    let results = storage
        .save_many(&[record(&id, &json, None), record(&small, &small_json, None)])
        .unwrap();
    assert_eq!(
        results[0].as_ref().unwrap_err().kind,
        ErrorKind::INVALID_INPUT
    );
    assert!(results[1].is_ok());
    assert!(storage.exists(&small).unwrap());
}

#[test]
fn save_many_is_one_insert_and_falls_back_to_upserts() {
    let (emulator, keys) = emulator();
    let storage = open(&options_with_key(&emulator, &keys));
    storage.provision(false).unwrap();
    let ids: Vec<String> = (0..20).map(|_| uuid()).collect();
    let docs: Vec<Vec<u8>> = ids.iter().map(|id| doc(id, Some("batch"))).collect();
    let records: Vec<_> = ids
        .iter()
        .zip(&docs)
        .map(|(id, json)| record(id, json, Some("batch")))
        .collect();
    let before = emulator.statements().len();
    let results = storage.save_many(&records).unwrap();
    assert!(results.iter().all(Result::is_ok));
    let sent = &emulator.statements()[before..];
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("INSERT INTO VCON.VCONS"));
    // Half of them again, changed, with new ones: the INSERT is refused, each is upserted.
    let mut changed: Vec<(String, Vec<u8>)> = ids[..10]
        .iter()
        .map(|id| (id.clone(), doc(id, Some("changed"))))
        .collect();
    changed.extend((0..5).map(|_| {
        let id = uuid();
        let json = doc(&id, Some("new"));
        (id, json)
    }));
    let records: Vec<_> = changed
        .iter()
        .map(|(id, json)| record(id, json, None))
        .collect();
    let results = storage.save_many(&records).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for (id, json) in &changed {
        assert_eq!(storage.get(id).unwrap().as_deref(), Some(json.as_slice()));
    }
    assert_eq!(storage.count().unwrap(), 25);
}

#[test]
fn transient_failures_are_retried_and_persistent_ones_are_unavailable() {
    let (emulator, keys) = emulator();
    let storage = open(&options_with_key(&emulator, &keys));
    storage.provision(false).unwrap();
    emulator.fail_next(2, 503);
    round_trip(&storage).unwrap();
    emulator.fail_next(1, 429);
    round_trip(&storage).unwrap();
    emulator.fail_next(10, 500);
    let err = round_trip(&storage).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
}

#[test]
fn a_hanging_service_times_out_as_unavailable() {
    let (emulator, keys) = emulator();
    let storage = open(&with(
        options_with_key(&emulator, &keys),
        json!({"timeout": 0.5, "retries": 0}),
    ));
    storage.provision(false).unwrap();
    emulator.delay_next(1, Duration::from_secs(2));
    let started = std::time::Instant::now();
    let err = storage.get(&uuid()).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(1800));
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
    assert!(err.message.contains("timed out"), "{err}");
}

#[test]
fn a_wrong_api_key_is_refused_at_open_without_showing_it() {
    let (emulator, keys) = emulator();
    let options = with(
        options_with_key(&emulator, &keys),
        json!({"api_key": "sxt_wrong_secret"}),
    );
    let err = open_error(&options);
    assert!(err.contains("API key"), "{err}");
    assert!(!err.contains("sxt_wrong_secret"), "{err}");
    // Without `authenticate`, the storage opens and the first operation says it.
    let storage = open(&with(options, json!({"authenticate": false})));
    let err = storage.exists(&uuid()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
    assert_eq!(emulator.stats().auth_calls, 2);
}

#[test]
fn an_unreachable_service_opens_and_reports_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let storage = open(&json!({
        "api_key": API_KEY,
        "table_name": TABLE,
        "api_url": url,
        "auth_url": url,
        "retries": 0,
    }));
    let id = uuid();
    let json = doc(&id, None);
    let err = storage.save(&record(&id, &json, None)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
}

#[test]
fn a_missing_table_is_not_found_with_the_remedy() {
    let (emulator, keys) = emulator();
    let storage = open(&options_with_key(&emulator, &keys));
    let err = storage.get(&uuid()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NOT_FOUND, "{err}");
    assert!(err.message.contains("provision"), "{err}");
}

#[test]
fn uuids_are_validated_before_any_sql() {
    let (emulator, keys) = emulator();
    let storage = open(&options_with_key(&emulator, &keys));
    storage.provision(false).unwrap();
    let before = emulator.stats().sql_calls;
    for bad in [
        "x' OR '1'='1",
        "../etc",
        "",
        "018f3e2a-7b1c-7d2e-8f90-0123456789a'",
    ] {
        assert_eq!(storage.get(bad).unwrap_err().kind, ErrorKind::INVALID_INPUT);
        assert_eq!(
            storage.delete(bad).unwrap_err().kind,
            ErrorKind::INVALID_INPUT
        );
        assert_eq!(
            storage.exists(bad).unwrap_err().kind,
            ErrorKind::INVALID_INPUT
        );
    }
    assert_eq!(emulator.stats().sql_calls, before);
}

#[test]
fn provision_is_declared_only_with_a_private_key() {
    let (emulator, keys) = emulator();
    let with_key = open(&options_with_key(&emulator, &keys));
    assert!(with_key.capabilities().contains(Capabilities::PROVISION));
    let report = with_key.provision(false).unwrap();
    assert_eq!(report["created"], json!(true));
    assert_eq!(report["public_key"], json!(keys.public_hex));
    let again = with_key.provision(false).unwrap();
    assert_eq!(again["created"], json!(false));
    let recreated = with_key.provision(true).unwrap();
    assert_eq!(recreated["dropped"], json!(true));
    assert_eq!(recreated["created"], json!(true));
    let without = open(&json!({
        "api_key": API_KEY,
        "table_name": TABLE,
        "write_biscuit": keys.biscuit(&["*"], TABLE),
        "api_url": emulator.api_url(),
        "auth_url": emulator.auth_url(),
    }));
    assert!(!without.capabilities().contains(Capabilities::PROVISION));
    assert!(without.capabilities().contains(Capabilities::GET));
}

#[test]
fn options_errors_name_the_option() {
    let emulator = Emulator::start().unwrap();
    let err = open_error(&json!({
        "api_key": API_KEY,
        "table_name": "vcons",
        "api_url": emulator.api_url(),
        "auth_url": emulator.auth_url(),
    }));
    assert!(
        err.contains("table_name") && err.contains("SCHEMA.TABLE"),
        "{err}"
    );
    let err = open_error(&json!({"api_key": API_KEY, "table_name": "a.b", "tablename": "x"}));
    assert!(err.contains("tablename"), "{err}");
}
