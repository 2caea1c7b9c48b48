//! Failures map to the kinds the host acts on, with messages that say what to do; options are
//! checked at open; a uuid that is not one never reaches Redis; passwords never reach a message.

use std::time::{Duration, Instant};

use plugin_loader::{ErrorKind, VconRecord};
use serde_json::json;

use crate::fixtures::{
    assert_same, closed_port, open, open_err, server, with, Direct, Doc, OwnServer,
};

#[test]
fn bad_options_are_invalid_input_naming_the_key() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    for (extra, key) in [
        (json!({"expires": "soon"}), "expires"),
        (json!({"expires": -5}), "expires"),
        (json!({"expires": 99_999_999_999_u64}), "expires"),
        (json!({"prefx": "typo"}), "prefx"),
        (json!({"prefix": ""}), "prefix"),
        (json!({"pool_size": 0}), "pool_size"),
        (json!({"connect_timeout": "never"}), "connect_timeout"),
        (json!({"command_timeout": 0}), "command_timeout"),
        (json!({"redis_url": "http://127.0.0.1:6379"}), "redis_url"),
        (
            json!({"redis_url": "redis://127.0.0.1:6379/eleven"}),
            "redis_url",
        ),
        (
            json!({"redis_url": "rediss://127.0.0.1:6379/11"}),
            "redis_url",
        ),
        (json!({"redis_url": 6379}), "redis_url"),
    ] {
        let err = open_err(&with(server.options(&prefix), extra.clone()));
        assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{extra}: {err}");
        assert!(err.message.contains(key), "{extra}: {err}");
    }
}

#[test]
fn a_database_number_beyond_the_server_is_invalid_input() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let err = open_err(&with(
        server.options(&prefix),
        json!({"redis_url": "redis://127.0.0.1:6379/9999"}),
    ));
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    assert!(err.message.contains("DB index is out of range"), "{err}");
    assert!(err.message.contains("databases"), "{err}");
}

#[test]
fn a_malformed_uuid_is_refused_before_it_becomes_a_key() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let storage = open(&server.options(&prefix));
    let good: Vec<Doc> = (0..2).map(|_| Doc::synthetic()).collect();
    for doc in &good {
        storage.save(&doc.record()).unwrap();
    }
    let json = br#"{"uuid":"x","vcon":"0.0.1"}"#;
    for evil in [
        "*",
        "",
        "not-a-uuid",
        "../../etc/passwd",
        "0190f2a0-8b4c-7def-9abc-0123456789a*",
        "0190f2a0-8b4c-7def-9abc-0123456789ab\r\nFLUSHALL",
        &format!("{}:*", prefix.name),
    ] {
        let record = VconRecord::new(evil, json, 1_700_000_000_000_000);
        let err = storage.save(&record).unwrap_err();
        assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{evil:?}: {err}");
        assert!(err.message.contains("not a UUID"), "{err}");
        for err in [
            storage.get(evil).unwrap_err(),
            storage.delete(evil).unwrap_err(),
            storage.exists(evil).unwrap_err(),
            storage.get_many(&[&good[0].uuid, evil]).unwrap_err(),
            storage.delete_many(&[&good[0].uuid, evil]).unwrap_err(),
        ] {
            assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{evil:?}: {err}");
        }
        // In a batch, only the bad record fails.
        let results = storage
            .save_many(&[good[0].record(), record, good[1].record()])
            .unwrap();
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert_eq!(
            results[1].as_ref().unwrap_err().kind,
            ErrorKind::INVALID_INPUT
        );
    }
    // Nothing but the two good keys was written, and nothing was deleted.
    let mut direct = Direct::connect();
    let mut expected: Vec<String> = good.iter().map(|d| prefix.key(&d.uuid)).collect();
    expected.sort();
    assert_eq!(direct.keys_under(&prefix.name), expected);
    for doc in &good {
        assert_same(doc, storage.get(&doc.uuid).unwrap());
    }
    // A list cursor that is not a uuid is refused too.
    let err = storage.list(&json!({"after": "*"})).unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
}

#[test]
fn an_unreachable_server_is_unavailable_at_once_and_says_what_to_do() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let port = closed_port();
    let started = Instant::now();
    let err = open_err(&with(
        server.options(&prefix),
        json!({"redis_url": format!("redis://127.0.0.1:{port}/11"), "connect_timeout": 5}),
    ));
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
    assert!(err.is_retryable());
    assert!(err.retry_after.is_some(), "{err:?}");
    assert!(
        err.message
            .contains(&format!("redis://127.0.0.1:{port}/11")),
        "{err}"
    );
    assert!(err.message.contains("is Redis running"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn passwords_never_reach_a_message() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let port = closed_port();
    for url in [
        format!("redis://app:hunter2@127.0.0.1:{port}/11"),
        format!("redis://:hunter2@127.0.0.1:{port}/11"),
        "redis://app:hunter2@127.0.0.1:6379/eleven".to_owned(),
        "http://app:hunter2@127.0.0.1:6379/11".to_owned(),
        "redis://app:hunter2@127.0.0.1:99999/11".to_owned(),
    ] {
        let err = open_err(&with(server.options(&prefix), json!({ "redis_url": url })));
        assert!(!err.message.contains("hunter2"), "{err}");
    }
    let err = open_err(&with(
        server.options(&prefix),
        json!({ "redis_url": format!("redis://app:hunter2@127.0.0.1:{port}/11") }),
    ));
    assert!(err.message.contains("redis://app:***@127.0.0.1:"), "{err}");
}

#[test]
fn refused_credentials_are_unauthorized() {
    let Some(mut own) = OwnServer::start_with(&["--requirepass", "s3cret-pw"]) else {
        return;
    };
    let base = format!("redis://127.0.0.1:{}", own.port);
    let options = |url: String| json!({ "redis_url": url, "prefix": "auth_test" });

    // No password at all.
    let err = open_err(&options(format!("{base}/0")));
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
    assert!(err.message.contains("password"), "{err}");
    // The wrong one, which must not be repeated.
    let err = open_err(&options(format!(
        "redis://:wrong-pw-123@127.0.0.1:{}/0",
        own.port
    )));
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
    assert!(!err.message.contains("wrong-pw-123"), "{err}");
    assert!(err.message.contains(":***@"), "{err}");
    // The right one.
    let storage = open(&options(format!(
        "redis://:s3cret-pw@127.0.0.1:{}/0",
        own.port
    )));
    let doc = Doc::synthetic();
    storage.save(&doc.record()).unwrap();
    assert_same(&doc, storage.get(&doc.uuid).unwrap());
    own.kill();
}

#[test]
fn a_key_of_another_type_is_a_conflict_naming_the_prefix() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let storage = open(&server.options(&prefix));
    let doc = Doc::synthetic();
    let mut direct = Direct::connect();
    redis::cmd("RPUSH")
        .arg(prefix.key(&doc.uuid))
        .arg("not a vCon")
        .query::<()>(&mut direct.conn)
        .unwrap();
    let err = storage.get(&doc.uuid).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CONFLICT, "{err}");
    assert!(err.message.contains("WRONGTYPE"), "{err}");
    assert!(err.message.contains("prefix"), "{err}");
    // SET replaces whatever was there, as the Python module's did.
    storage.save(&doc.record()).unwrap();
    assert_same(&doc, storage.get(&doc.uuid).unwrap());
}
