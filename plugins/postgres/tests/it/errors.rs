//! Failures map to the kinds the host acts on, with messages that say what to do; TLS modes.

use std::time::{Duration, Instant};

use plugin_loader::ErrorKind;
use serde_json::json;

use crate::fixtures::{assert_same, new_uuid, open, open_err, server, with, Direct, Doc};

/// A port on loopback where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[test]
fn an_unreachable_server_is_unavailable_at_once() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let started = Instant::now();
    let err = open_err(&with(
        server.options(&table.name),
        json!({"port": closed_port(), "connect_timeout": 5}),
    ));
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
    assert!(err.is_retryable());
    assert!(err.message.contains("127.0.0.1:"), "{err}");
    assert!(err.message.contains("running"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn refused_credentials_are_unauthorized() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let err = open_err(&with(
        server.options(&table.name),
        json!({"user": "no_such_role_for_vcon_host"}),
    ));
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
    assert!(err.message.contains("no_such_role_for_vcon_host"), "{err}");
    assert!(err.message.contains("28000"), "{err}");
}

#[test]
fn a_missing_database_is_not_found() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let err = open_err(&with(
        server.options(&table.name),
        json!({"database": "no_such_database_for_vcon_host"}),
    ));
    assert_eq!(err.kind, ErrorKind::NOT_FOUND, "{err}");
    assert!(err.message.contains("createdb"), "{err}");
}

#[test]
fn bad_options_are_invalid_input_naming_the_key() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    for (extra, key) in [
        (json!({"pool_size": 0}), "pool_size"),
        (json!({"pool_sise": 3}), "pool_sise"),
        (json!({"sslmode": "always"}), "sslmode"),
        (json!({"url": "postgres://h/d"}), "url"),
        (json!({"statement_timeout": "soon"}), "statement_timeout"),
    ] {
        let err = open_err(&with(server.options(&table.name), extra));
        assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
        assert!(err.message.contains(key), "{key}: {err}");
    }
}

#[test]
fn python_options_are_accepted_as_they_are() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&json!({
        "name": "postgres",
        "host": crate::fixtures::host(),
        "port": crate::fixtures::port().to_string(),
        "database": crate::fixtures::database(),
        "user": crate::fixtures::user(),
        "password": "",
        "table_name": table.name,
    }));
    let doc = Doc::synthetic(&new_uuid(), "2024-01-02T03:04:05Z");
    storage.save(&doc.record()).unwrap();
    assert_same(&doc, storage.get(&doc.uuid).unwrap());
}

#[test]
fn a_document_postgres_cannot_hold_fails_alone() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    // jsonb refuses the NUL character (\u0000) in strings.
    let bad_uuid = new_uuid();
    let bad = Doc::from_json(
        format!(r#"{{"uuid":"{bad_uuid}","vcon":"0.0.1","created_at":"2024-01-02T03:04:05Z","subject":"nul \u0000 here"}}"#)
            .into_bytes(),
    );
    let err = storage.save(&bad.record()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    assert!(err.message.contains(&bad_uuid), "{err}");

    let good: Vec<Doc> = (0..5)
        .map(|_| Doc::synthetic(&new_uuid(), "2024-01-02T03:04:05Z"))
        .collect();
    let mut records: Vec<_> = good.iter().map(Doc::record).collect();
    records.insert(2, bad.record());
    let results = storage.save_many(&records).unwrap();
    for (i, result) in results.iter().enumerate() {
        if i == 2 {
            assert_eq!(result.as_ref().unwrap_err().kind, ErrorKind::INVALID_INPUT);
        } else {
            result.as_ref().unwrap();
        }
    }
    for doc in &good {
        assert_same(doc, storage.get(&doc.uuid).unwrap());
    }
    assert_eq!(storage.get(&bad.uuid).unwrap(), None);
}

#[test]
fn tls_follows_sslmode() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    // This machine's server has ssl = on with a self-signed ("snakeoil") certificate.
    let server_tls = Direct::connect().text("SHOW ssl", &[]).as_deref() == Some("on");
    if !server_tls {
        eprintln!("*** the server has ssl = off: only sslmode disable and prefer are tested ***");
        let storage = open(&with(
            server.options(&table.name),
            json!({"sslmode": "prefer"}),
        ));
        assert_eq!(storage.status().unwrap()["tls"], false);
        return;
    }
    for (mode, tls) in [("disable", false), ("prefer", true), ("require", true)] {
        let storage = open(&with(server.options(&table.name), json!({"sslmode": mode})));
        let status = storage.status().unwrap();
        assert_eq!(status["tls"], tls, "{mode}: {status}");
        assert_eq!(status["sslmode"], mode, "{status}");
    }
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    if std::path::Path::new(snakeoil).is_file() {
        // The certificate is trusted but names the machine, not 127.0.0.1.
        let storage = open(&with(
            server.options(&table.name),
            json!({"sslmode": "verify-ca", "sslrootcert": snakeoil}),
        ));
        assert_eq!(storage.status().unwrap()["tls"], true);
        let err = open_err(&with(
            server.options(&table.name),
            json!({"sslmode": "verify-full", "sslrootcert": snakeoil}),
        ));
        assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
        assert!(err.message.contains("sslmode"), "{err}");
    }
    // CAs that did not sign the server's certificate.
    let public_cas = "/etc/ssl/certs/ca-certificates.crt";
    if std::path::Path::new(public_cas).is_file() {
        let err = open_err(&with(
            server.options(&table.name),
            json!({"sslmode": "verify-ca", "sslrootcert": public_cas}),
        ));
        assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
        assert!(err.message.contains("certificate"), "{err}");
    }
}

/// A login role for one test, dropped at the end.
struct Role(String);

impl Drop for Role {
    fn drop(&mut self) {
        if let Ok(direct) = Direct::try_connect() {
            let _ = direct.client_batch(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.0));
        }
    }
}

#[test]
fn a_role_without_rights_is_unauthorized_and_uses_what_it_may() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let direct = Direct::connect();
    let role = Role(format!(
        "r_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    direct.batch(&format!("CREATE ROLE {} LOGIN", role.0));
    let options = with(server.options(&table.name), json!({"user": role.0}));
    let may_create: bool = direct.query(
        "SELECT has_schema_privilege($1, 'public', 'CREATE')",
        &[&role.0],
    )[0]
    .get(0);
    if !may_create {
        // Creating the table needs CREATE on the schema (PostgreSQL 15 no longer grants it).
        let err = open_err(&options);
        assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
        assert!(err.message.contains("42501"), "{err}");
        assert!(err.message.contains("grant"), "{err}");
    }

    // A Python table the role may only read: used as it is, writes refused.
    let old = Doc::synthetic(&new_uuid(), "2024-03-01T12:00:00Z");
    direct.batch(&format!(
        "CREATE TABLE \"{t}\" (id UUID PRIMARY KEY, vcon TEXT NOT NULL, uuid UUID NOT NULL,
            created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP, subject TEXT, vcon_json JSONB);
         INSERT INTO \"{t}\" VALUES ('{u}', '0.0.1', '{u}', '2024-03-01 12:00:00', now(), NULL,
            '{j}');
         GRANT SELECT ON \"{t}\" TO {r}",
        t = table.name,
        u = old.uuid,
        j = String::from_utf8(old.json.clone()).unwrap(),
        r = role.0
    ));
    let storage = open(&options);
    assert_same(&old, storage.get(&old.uuid).unwrap());
    let new = Doc::synthetic(&new_uuid(), "2024-03-01T12:00:01Z");
    let err = storage.save(&new.record()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
    let results = storage.save_many(&[new.record()]);
    assert_eq!(results.unwrap_err().kind, ErrorKind::UNAUTHORIZED);
    direct.batch(&format!(
        "GRANT INSERT, UPDATE ON \"{}\" TO {}",
        table.name, role.0
    ));
    storage.save(&new.record()).unwrap();
    assert_same(&new, storage.get(&new.uuid).unwrap());
}
