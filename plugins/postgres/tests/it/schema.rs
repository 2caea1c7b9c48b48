//! Migrations (fresh, re-run, recreate, concurrent), `create: false`, and tables the plugin did
//! not create: the Python server's (adopted and used as is) and foreign ones (refused).

use plugin_loader::ErrorKind;
use serde_json::json;

use crate::fixtures::{assert_same, new_uuid, open, open_err, server, with, Direct, Doc};

/// The columns of `table` as `name type`, in order.
fn columns(direct: &Direct, table: &str) -> Vec<String> {
    direct
        .query(
            "SELECT a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            &[&format!("\"{table}\"")],
        )
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// The migration records of `table` as (version, adopted).
fn migrations(direct: &Direct, table: &str) -> Vec<(i32, bool)> {
    if !direct.table_exists("vcon_host_schema_migrations") {
        return Vec::new();
    }
    direct
        .query(
            "SELECT version, adopted FROM vcon_host_schema_migrations
             WHERE table_name = $1 ORDER BY version",
            &[&table],
        )
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[test]
fn a_fresh_table_is_created_by_the_migrations() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    let direct = Direct::connect();
    assert_eq!(
        columns(&direct, &table.name),
        [
            "id uuid",
            "vcon text",
            "uuid uuid",
            "created_at timestamp with time zone",
            "updated_at timestamp with time zone",
            "subject text",
            "vcon_json jsonb",
        ]
    );
    let indexes: Vec<String> = direct
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname",
            &[&table.name],
        )
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(indexes.len(), 3, "{indexes:?}");
    assert!(
        indexes.iter().any(|i| i.contains("(created_at, id)")),
        "{indexes:?}"
    );
    assert!(indexes.iter().any(|i| i.contains("(uuid)")), "{indexes:?}");
    assert_eq!(migrations(&direct, &table.name), [(1, false)]);

    // The first provision after open has nothing left to do.
    let report = storage.provision(false).unwrap();
    assert_eq!(report["applied"], json!([]), "{report}");
    assert_eq!(report["version"], 1);
    assert_eq!(report["recreated"], false);
}

#[test]
fn provision_again_is_a_no_op_and_keeps_data() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&with(server.options(&table.name), json!({"create": false})));
    let first = storage.provision(false).unwrap();
    assert_eq!(first["applied"], json!([1]), "{first}");
    let doc = Doc::synthetic(&new_uuid(), "2024-01-02T03:04:05Z");
    storage.save(&doc.record()).unwrap();
    for _ in 0..2 {
        let again = storage.provision(false).unwrap();
        assert_eq!(again["applied"], json!([]), "{again}");
        assert_eq!(again["adopted_now"], false, "{again}");
    }
    assert_same(&doc, storage.get(&doc.uuid).unwrap());
    let direct = Direct::connect();
    assert_eq!(migrations(&direct, &table.name), [(1, false)]);
    // A second storage on the provisioned table changes nothing either.
    drop(open(&server.options(&table.name)));
    assert_eq!(migrations(&direct, &table.name), [(1, false)]);
}

#[test]
fn recreate_drops_and_creates_again() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    let doc = Doc::synthetic(&new_uuid(), "2024-01-02T03:04:05Z");
    storage.save(&doc.record()).unwrap();
    let report = storage.provision(true).unwrap();
    assert_eq!(report["recreated"], true, "{report}");
    assert_eq!(report["applied"], json!([1]), "{report}");
    assert_eq!(storage.get(&doc.uuid).unwrap(), None);
    assert_eq!(storage.count().unwrap(), 0);
    storage.save(&doc.record()).unwrap();
    assert_same(&doc, storage.get(&doc.uuid).unwrap());
    assert_eq!(migrations(&Direct::connect(), &table.name), [(1, false)]);
}

#[test]
fn create_false_waits_for_provision() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&with(server.options(&table.name), json!({"create": false})));
    let direct = Direct::connect();
    assert!(!direct.table_exists(&table.name), "open created the table");
    let doc = Doc::synthetic(&new_uuid(), "2024-01-02T03:04:05Z");
    let err = storage.save(&doc.record()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NOT_FOUND, "{err}");
    assert!(err.message.contains("provision"), "{err}");
    assert!(err.message.contains(&table.name), "{err}");
    let status = storage.status().unwrap();
    assert_eq!(status["provisioned"], false, "{status}");
    storage.provision(false).unwrap();
    storage.save(&doc.record()).unwrap();
    assert_same(&doc, storage.get(&doc.uuid).unwrap());
}

#[test]
fn a_table_dropped_behind_the_storage_is_reported_then_provisioned() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let storage = open(&server.options(&table.name));
    let doc = Doc::synthetic(&new_uuid(), "2024-01-02T03:04:05Z");
    storage.save(&doc.record()).unwrap();
    Direct::connect().batch(&format!("DROP TABLE \"{}\"", table.name));
    let err = storage.save(&doc.record()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NOT_FOUND, "{err}");
    assert!(err.message.contains("provision"), "{err}");
    // Records without a table: provision starts again.
    let report = storage.provision(false).unwrap();
    assert_eq!(report["applied"], json!([1]), "{report}");
    storage.save(&doc.record()).unwrap();
    assert_same(&doc, storage.get(&doc.uuid).unwrap());
}

#[test]
fn storages_provisioning_at_once_take_turns() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let options = server.options(&table.name);
    let opened: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| crate::fixtures::library().open(&options.to_string())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for storage in &opened {
        assert!(storage.is_ok(), "{:?}", storage.as_ref().err());
    }
    assert_eq!(migrations(&Direct::connect(), &table.name), [(1, false)]);
}

/// The table the Python server's `storage.postgres` creates (its peewee model), with one row
/// as it writes them.
fn create_python_table(direct: &Direct, table: &str, uuid: &str, doc: &Doc) {
    direct.batch(&format!(
        "CREATE TABLE \"{table}\" (
            id UUID PRIMARY KEY,
            vcon TEXT NOT NULL,
            uuid UUID NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP,
            subject TEXT,
            vcon_json JSONB
        )"
    ));
    let json = String::from_utf8(doc.json.clone()).unwrap();
    direct
        .execute(
            &format!(
                "INSERT INTO \"{table}\" VALUES ($1::text::uuid, '0.0.1', $1::text::uuid,
                 '2024-03-01 12:00:00', now()::timestamp, 'from python', $2::text::jsonb)"
            ),
            &[&uuid, &json],
        )
        .unwrap();
}

#[test]
fn a_python_table_is_adopted_and_used_as_it_is() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let direct = Direct::connect();
    let old_uuid = new_uuid();
    let old = Doc::synthetic(&old_uuid, "2024-03-01T12:00:00Z");
    create_python_table(&direct, &table.name, &old_uuid, &old);
    let before = columns(&direct, &table.name);

    let storage = open(&server.options(&table.name));
    // Python's rows read back unchanged.
    assert_same(&old, storage.get(&old_uuid).unwrap());
    assert!(storage.exists(&old_uuid).unwrap());
    // Recorded as adopted, and not altered.
    assert_eq!(migrations(&direct, &table.name), [(1, true)]);
    assert_eq!(columns(&direct, &table.name), before);
    let status = storage.status().unwrap();
    assert_eq!(status["adopted"], true, "{status}");
    assert!(
        status["layout"].as_str().unwrap().contains("python"),
        "{status}"
    );

    // New rows go into the timestamp columns as UTC: 14:00:05+02:00 is 12:00:05.
    let new = Doc::synthetic(&new_uuid(), "2024-03-01T14:00:05+02:00");
    storage.save(&new.record()).unwrap();
    let batch = [
        Doc::synthetic(&new_uuid(), "2024-03-01T14:00:06+02:00"),
        Doc::synthetic(&new_uuid(), "2024-03-01T14:00:07+02:00"),
    ];
    let records: Vec<_> = batch.iter().map(Doc::record).collect();
    for result in storage.save_many(&records).unwrap() {
        result.unwrap();
    }
    for (doc, expected) in [
        (&new, "2024-03-01 12:00:05"),
        (&batch[0], "2024-03-01 12:00:06"),
        (&batch[1], "2024-03-01 12:00:07"),
    ] {
        let stored = direct.text(
            &format!(
                "SELECT created_at::text || ' ' || vcon || ' ' || (updated_at > now()::timestamp - interval '1 day')::text
                 FROM \"{}\" WHERE id = $1::text::uuid",
                table.name
            ),
            &[&doc.uuid],
        );
        assert_eq!(stored.as_deref(), Some(&*format!("{expected} 0.0.1 true")));
        assert_same(doc, storage.get(&doc.uuid).unwrap());
    }
    // Listing walks both kinds of rows, newest first.
    let page = storage.list(&json!({"limit": 10})).unwrap();
    assert_eq!(page["uuids"][0], batch[1].uuid.as_str(), "{page}");
    assert_eq!(page["uuids"][3], old_uuid.as_str(), "{page}");
    // Provisioning again changes nothing.
    let report = storage.provision(false).unwrap();
    assert_eq!(report["applied"], json!([]), "{report}");
    assert_eq!(report["adopted"], true, "{report}");
    assert_eq!(columns(&direct, &table.name), before);
}

#[test]
fn a_python_table_is_usable_without_any_record() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let direct = Direct::connect();
    let old_uuid = new_uuid();
    let old = Doc::synthetic(&old_uuid, "2024-03-01T12:00:00Z");
    create_python_table(&direct, &table.name, &old_uuid, &old);
    let storage = open(&with(server.options(&table.name), json!({"create": false})));
    assert_same(&old, storage.get(&old_uuid).unwrap());
    let new = Doc::synthetic(&new_uuid(), "2024-03-01T12:00:01Z");
    storage.save(&new.record()).unwrap();
    assert_eq!(storage.count().unwrap(), 2);
    assert!(migrations(&direct, &table.name).is_empty());
    // recreate turns it into this plugin's table.
    storage.provision(true).unwrap();
    assert_eq!(
        columns(&direct, &table.name)[3],
        "created_at timestamp with time zone"
    );
    storage.save(&new.record()).unwrap();
    assert_same(&new, storage.get(&new.uuid).unwrap());
}

#[test]
fn a_foreign_table_is_refused_with_what_differs() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let direct = Direct::connect();
    // The schema the Python docs show, which its code never creates.
    direct.batch(&format!(
        "CREATE TABLE \"{}\" (uuid VARCHAR PRIMARY KEY, data JSONB)",
        table.name
    ));
    let err = open_err(&server.options(&table.name));
    assert_eq!(err.kind, ErrorKind::CONFLICT, "{err}");
    assert!(err.message.contains("no column vcon_json"), "{err}");
    assert!(err.message.contains("recreate"), "{err}");
    // Nothing was recorded or changed.
    assert!(migrations(&direct, &table.name).is_empty());
    assert_eq!(columns(&direct, &table.name).len(), 2);
}
