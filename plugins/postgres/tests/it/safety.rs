//! SQL in values is stored as text; SQL in a uuid or a table name is refused before any SQL
//! runs; secrets stay out of messages.

use plugin_loader::{ErrorKind, VconRecord};
use serde_json::json;

use crate::fixtures::{assert_same, new_uuid, open, open_err, server, with, Direct, Doc};

#[test]
fn sql_in_a_subject_or_document_is_stored_as_text() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    let direct = Direct::connect();
    for subject in [
        "'; DROP TABLE vcons; --".to_owned(),
        format!("'; DROP TABLE \"{}\"; --", table.name),
        format!("x'); DELETE FROM \"{}\"; --", table.name),
        "$1 $$ \\x00 %s {} \" \\ ünïcödé 😀".to_owned(),
    ] {
        let uuid = new_uuid();
        let json = json!({
            "uuid": uuid,
            "vcon": "0.0.1'; DROP TABLE vcons; --",
            "created_at": "2024-01-02T03:04:05Z",
            "subject": subject,
            "parties": [{"name": format!("Robert'); DROP TABLE \"{}\";--", table.name)}],
        })
        .to_string();
        let mut doc = Doc::from_json(json.into_bytes());
        doc.subject = Some(subject.clone());
        storage.save(&doc.record()).unwrap();
        // Through a batch too.
        let other = doc.with_uuid(&new_uuid());
        for result in storage.save_many(&[other.record()]).unwrap() {
            result.unwrap();
        }
        assert!(direct.table_exists(&table.name), "the table was dropped");
        assert_same(&doc, storage.get(&doc.uuid).unwrap());
        assert_same(&other, storage.get(&other.uuid).unwrap());
        let stored = direct.text(
            &format!(
                "SELECT subject FROM \"{}\" WHERE id = $1::text::uuid",
                table.name
            ),
            &[&doc.uuid],
        );
        assert_eq!(stored.as_deref(), Some(subject.as_str()));
        let version = direct.text(
            &format!(
                "SELECT vcon FROM \"{}\" WHERE id = $1::text::uuid",
                table.name
            ),
            &[&doc.uuid],
        );
        assert_eq!(version.as_deref(), Some("0.0.1'; DROP TABLE vcons; --"));
        // Searching with SQL in the value finds the document, not the table.
        let found = storage
            .query(&json!({"name": format!("Robert'); DROP TABLE \"{}\";--", table.name)}))
            .unwrap();
        assert!(found.contains(&doc.uuid), "{found:?}");
    }
    assert_eq!(storage.count().unwrap(), 8);
}

#[test]
fn sql_in_a_uuid_is_refused_before_any_sql() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    let evil = format!("'; DROP TABLE \"{}\"; --", table.name);
    let json = json!({"uuid": evil, "vcon": "0.0.1"}).to_string();
    let record = VconRecord::new(&evil, json.as_bytes(), 1_700_000_000_000_000);
    let err = storage.save(&record).unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    assert!(err.message.contains("not a UUID"), "{err}");
    let results = storage.save_many(&[record]).unwrap();
    assert_eq!(
        results[0].as_ref().unwrap_err().kind,
        ErrorKind::INVALID_INPUT
    );
    // Reads of such a uuid find nothing, and nothing else happens.
    assert_eq!(storage.get(&evil).unwrap(), None);
    assert!(!storage.exists(&evil).unwrap());
    assert!(!storage.delete(&evil).unwrap());
    assert_eq!(storage.get_many(&[&evil]).unwrap(), [None]);
    assert_eq!(storage.delete_many(&[&evil]).unwrap(), [false]);
    assert!(Direct::connect().table_exists(&table.name));
}

#[test]
fn sql_in_a_table_name_is_refused_at_open() {
    let Some(server) = server() else { return };
    for name in [
        "vcons; DROP TABLE vcons; --",
        "vcons\"; DROP TABLE vcons; --",
        "public.vcons",
        "vcon_host_schema_migrations",
    ] {
        let err = open_err(&server.options(name));
        assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
        assert!(err.message.contains("table_name"), "{err}");
    }
}

#[test]
fn passwords_never_reach_a_message() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    for options in [
        json!({"url": "postgres://postgres:hunter2@127.0.0.1:1/test", "connect_timeout": 2,
               "table_name": table.name}),
        with(
            server.options(&table.name),
            json!({"password": "hunter2", "port": 1, "connect_timeout": 2}),
        ),
        json!({"url": "postgres://postgres:hunter2@127.0.0.1/test?nonsense=1"}),
    ] {
        let err = open_err(&options);
        assert!(!err.message.contains("hunter2"), "{err}");
    }
}
