//! The emulator over real HTTP, as a client sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use plugin_sdk::http::{HttpClient, HttpOptions, Request};
use plugin_sdk::{ErrorKind, Secret};
use serde_json::{json, Value};
use sxt_emulator::{Emulator, TableKeys, API_KEY};

fn client() -> HttpClient {
    HttpClient::new(HttpOptions {
        retries: 0,
        ..HttpOptions::default()
    })
    .unwrap()
}

fn token(emulator: &Emulator, key: &str) -> Result<Value, plugin_sdk::StorageError> {
    client()
        .send(
            &Request::post(format!("{}/auth/apikey", emulator.auth_url()))
                .secret_header("apikey", Secret::from(key.to_owned()))
                .json(b"{}".to_vec()),
        )?
        .json()
}

fn sql(
    emulator: &Emulator,
    token: &str,
    text: &str,
    biscuits: &[String],
) -> plugin_sdk::http::Response {
    client()
        .send_raw(
            &Request::post(format!("{}/v1/sql", emulator.api_url()))
                .bearer(&Secret::from(token.to_owned()))
                .json(
                    json!({"sqlText": text, "biscuits": biscuits, "validate": "false"}).to_string(),
                ),
        )
        .unwrap()
}

#[test]
fn api_key_login_answers_a_token_with_its_expiry() {
    let emulator = Emulator::start().unwrap();
    let answer = token(&emulator, API_KEY).unwrap();
    assert!(answer["accessToken"].as_str().unwrap().len() > 20);
    let expires = answer["accessTokenExpires"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        expires > now + 1_400_000 && expires <= now + 1_500_000,
        "{expires} vs {now}"
    );
    let err = token(&emulator, "sxt_wrong").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(emulator.stats().auth_calls, 2);
}

#[test]
fn sql_needs_a_live_token() {
    let emulator = Emulator::start_with(&[API_KEY], Duration::from_millis(300)).unwrap();
    let answer = sql(&emulator, "nope", "SELECT 1", &[]);
    assert_eq!(answer.status(), 401);
    assert!(
        answer.text().contains("JWT authorization failed"),
        "{}",
        answer.text()
    );
    let live = token(&emulator, API_KEY).unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    emulator.create_schema("S").unwrap();
    let keys = TableKeys::generate();
    let ddl = format!(
        "CREATE TABLE S.T (ID VARCHAR, PRIMARY KEY (ID)) WITH \"public_key={},access_type=permissioned\"",
        keys.public_hex
    );
    let answer = sql(
        &emulator,
        &live,
        &ddl,
        &[keys.biscuit(&["ddl_create"], "s.t")],
    );
    assert_eq!(answer.status(), 200, "{}", answer.text());
    std::thread::sleep(Duration::from_millis(400));
    let answer = sql(
        &emulator,
        &live,
        "SELECT * FROM S.T",
        &[keys.biscuit(&["dql_select"], "s.t")],
    );
    assert_eq!(answer.status(), 401, "{}", answer.text());
    assert!(answer.text().contains("expired"));
}

#[test]
fn biscuits_gate_each_operation_and_rows_come_back_upper_case() {
    let emulator = Emulator::start().unwrap();
    let live = token(&emulator, API_KEY).unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    emulator.create_schema("vcon").unwrap();
    let keys = TableKeys::generate();
    let ddl = format!(
        "CREATE TABLE VCON.VCONS (UUID VARCHAR, SUBJECT VARCHAR, PRIMARY KEY (UUID)) WITH \"public_key={},access_type=permissioned\"",
        keys.public_hex
    );
    assert_eq!(
        sql(
            &emulator,
            &live,
            &ddl,
            &[keys.biscuit(&["ddl_create"], "vcon.vcons")]
        )
        .status(),
        200
    );
    let write = keys.biscuit(&["dml_insert", "dml_update", "dml_delete"], "vcon.vcons");
    let read = keys.biscuit(&["dql_select"], "vcon.vcons");
    let insert = "INSERT INTO VCON.VCONS (UUID, SUBJECT) VALUES ('u1', 'it''s')";
    let answer = sql(&emulator, &live, insert, std::slice::from_ref(&read));
    assert_eq!(answer.status(), 403, "{}", answer.text());
    assert!(answer.text().contains("biscuit authorization failed"));
    let answer = sql(&emulator, &live, insert, std::slice::from_ref(&write));
    assert_eq!(answer.json::<Value>().unwrap(), json!([{"UPDATED": 1}]));
    let answer = sql(&emulator, &live, insert, std::slice::from_ref(&write));
    assert_eq!(answer.status(), 400);
    assert!(answer.text().contains("Duplicate key during INSERT"));
    let answer = sql(
        &emulator,
        &live,
        "select uuid, subject from vcon.vcons",
        &[write],
    );
    assert_eq!(answer.status(), 403);
    let answer = sql(
        &emulator,
        &live,
        "select uuid, subject from vcon.vcons",
        &[read],
    );
    assert_eq!(
        answer.json::<Value>().unwrap(),
        json!([{"UUID": "u1", "SUBJECT": "it's"}])
    );
}

#[test]
fn scripted_faults() {
    let emulator = Emulator::start().unwrap();
    let live = token(&emulator, API_KEY).unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    emulator.fail_next(1, 503);
    let answer = sql(&emulator, &live, "SELECT 1", &[]);
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.header("retry-after"), Some("0"));
    emulator.revoke_tokens();
    assert_eq!(sql(&emulator, &live, "SELECT 1", &[]).status(), 401);
}
