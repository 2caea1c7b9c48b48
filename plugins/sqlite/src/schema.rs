//! The table, its versioned migrations, and every SQL statement the storage runs.
//!
//! Each table has its own `{table}_schema_migrations (version, applied_at, description)`, so
//! two storages with different `table_name`s in one file migrate (and `recreate`) independently.
//! [`provision`] applies the migrations the table has not had yet, in one `IMMEDIATE`
//! transaction (DDL is transactional in SQLite: a failed migration leaves nothing behind, and
//! two processes provisioning at once take turns). Migrations run at open (with `create: true`)
//! or on request, never on a save: the Python server's `CREATE TABLE IF NOT EXISTS` before
//! every insert is exactly what this replaces.
//!
//! Statements are built once per storage from the validated, quoted table name (the only text
//! not bound as a parameter) and prepared through rusqlite's statement cache.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::options::TableName;

/// One schema change: its version, what it does, and its SQL for a given table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// Applied in increasing order; recorded in the migrations table.
    pub(crate) version: i64,
    /// One line for the migrations table.
    pub(crate) description: &'static str,
    /// The statements, given the table's name.
    sql: fn(&TableName) -> String,
}

/// Every migration, oldest first. Append only: a released migration never changes, since
/// databases already carry its record.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description:
        "create the vCon table (the Python postgres seed) with uuid and created_at indexes",
    sql: migration_1,
}];

/// The schema version this build writes.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The table of the Python server's `storage.postgres`, in SQLite types. Timestamps are
/// RFC 3339 UTC text with microseconds (`2024-01-02T03:04:05.123456Z`), fixed width, so text
/// order is time order and the `sqlite3` CLI shows them as they are. The `(created_at, id)`
/// index is the order `list` walks.
fn migration_1(table: &TableName) -> String {
    let t = table.quoted();
    let uuid_idx = table.quoted_with_suffix("uuid_idx");
    let created_idx = table.quoted_with_suffix("created_at_idx");
    format!(
        "CREATE TABLE {t} (
            id         TEXT PRIMARY KEY NOT NULL,
            vcon       TEXT,
            uuid       TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            subject    TEXT,
            vcon_json  TEXT NOT NULL
        );
        CREATE INDEX {uuid_idx} ON {t} (uuid);
        CREATE INDEX {created_idx} ON {t} (created_at, id);"
    )
}

/// The SQL of one storage, built once at open (the text is also the statement cache's key, so
/// it must not be rebuilt per call).
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    /// `save`: insert, or replace every column of the row with the same id.
    pub(crate) upsert: String,
    /// `get`: the document.
    pub(crate) get: String,
    /// `exists`: whether the row is there, without reading the document.
    pub(crate) exists: String,
    /// `delete`: one row.
    pub(crate) delete: String,
    /// `count`: every row.
    pub(crate) count: String,
    /// `clear`: every row (the table and its schema stay).
    pub(crate) clear: String,
    /// `list`'s first page: newest first, by the `(created_at, id)` index.
    pub(crate) list_first: String,
    /// `list`'s later pages: the rows after the cursor's `(created_at, id)`.
    pub(crate) list_after: String,
    /// `query`: vCons with a party matching every given field, newest first.
    pub(crate) query: String,
}

impl Statements {
    /// The statements for `table`.
    pub(crate) fn new(table: &TableName) -> Self {
        let t = table.quoted();
        // A vCon matches when one of its party objects carries every given field. `CASE` keeps
        // `json_extract` off parties that are not objects (it fails on a bare string).
        let field = |name: &str, param: usize| {
            format!(
                "(?{param} IS NULL OR (CASE WHEN p.type = 'object' \
                 THEN json_extract(p.value, '$.{name}') END) = ?{param})"
            )
        };
        Self {
            upsert: format!(
                "INSERT INTO {t} (id, vcon, uuid, created_at, updated_at, subject, vcon_json)
                 VALUES (?1, ?2, ?1, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET
                     vcon = excluded.vcon,
                     uuid = excluded.uuid,
                     created_at = excluded.created_at,
                     updated_at = excluded.updated_at,
                     subject = excluded.subject,
                     vcon_json = excluded.vcon_json"
            ),
            get: format!("SELECT vcon_json FROM {t} WHERE id = ?1"),
            exists: format!("SELECT 1 FROM {t} WHERE id = ?1"),
            delete: format!("DELETE FROM {t} WHERE id = ?1"),
            count: format!("SELECT COUNT(*) FROM {t}"),
            clear: format!("DELETE FROM {t}"),
            list_first: format!(
                "SELECT id, created_at FROM {t}
                 ORDER BY created_at DESC, id DESC LIMIT ?1"
            ),
            list_after: format!(
                "SELECT id, created_at FROM {t}
                 WHERE (created_at, id) < (?1, ?2)
                 ORDER BY created_at DESC, id DESC LIMIT ?3"
            ),
            query: format!(
                "SELECT v.id FROM {t} AS v
                 WHERE EXISTS (
                     SELECT 1 FROM json_each(v.vcon_json, '$.parties') AS p
                     WHERE {} AND {} AND {})
                 ORDER BY v.created_at DESC, v.id DESC LIMIT ?4",
                field("tel", 1),
                field("mailto", 2),
                field("name", 3)
            ),
        }
    }
}

/// Whether a table of this name exists.
fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// The table's schema version: 0 when it has no migrations table (never provisioned).
pub(crate) fn current_version(conn: &Connection, table: &TableName) -> rusqlite::Result<i64> {
    if !table_exists(conn, &table.with_suffix("schema_migrations"))? {
        return Ok(0);
    }
    conn.query_row(
        &format!(
            "SELECT COALESCE(MAX(version), 0) FROM {}",
            table.quoted_with_suffix("schema_migrations")
        ),
        [],
        |row| row.get(0),
    )
}

/// What [`provision`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Provisioned {
    /// Whether the table and its records were dropped first.
    pub(crate) recreated: bool,
    /// The migrations applied now (empty when the schema was up to date).
    pub(crate) applied: Vec<i64>,
    /// The schema version afterwards.
    pub(crate) version: i64,
}

/// Why [`provision`] failed.
#[derive(Debug)]
pub(crate) enum ProvisionError {
    /// SQLite refused a statement.
    Sql(rusqlite::Error),
    /// The table exists without migration records: someone else's table.
    ForeignTable,
}

impl From<rusqlite::Error> for ProvisionError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sql(err)
    }
}

/// Brings `table` to the latest schema in one `IMMEDIATE` transaction; with `recreate`, drops
/// the table and its migration records first. Running it again is a no-op.
pub(crate) fn provision(
    conn: &mut Connection,
    table: &TableName,
    recreate: bool,
) -> Result<Provisioned, ProvisionError> {
    let migrations = table.quoted_with_suffix("schema_migrations");
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if recreate {
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {migrations};",
            table.quoted()
        ))?;
    }
    let current = current_version(&tx, table)?;
    if current == 0 && table_exists(&tx, table.as_str())? {
        return Err(ProvisionError::ForeignTable);
    }
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {migrations} (
            version     INTEGER PRIMARY KEY,
            applied_at  TEXT NOT NULL,
            description TEXT NOT NULL
        )"
    ))?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(&(migration.sql)(table))?;
        tx.execute(
            &format!(
                "INSERT INTO {migrations} (version, applied_at, description) VALUES (?1, ?2, ?3)"
            ),
            params![
                migration.version,
                crate::storage::now_text(),
                migration.description
            ],
        )?;
        applied.push(migration.version);
    }
    tx.commit()?;
    Ok(Provisioned {
        recreated: recreate,
        applied,
        version: current.max(latest_version()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableName {
        TableName::new("vcons").unwrap()
    }

    #[test]
    fn provisions_once_then_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        let first = provision(&mut conn, &table(), false).unwrap();
        assert_eq!(first.applied, vec![1]);
        assert_eq!(first.version, latest_version());
        let second = provision(&mut conn, &table(), false).unwrap();
        assert!(second.applied.is_empty());
        assert_eq!(current_version(&conn, &table()).unwrap(), 1);
        let recreated = provision(&mut conn, &table(), true).unwrap();
        assert!(recreated.recreated);
        assert_eq!(recreated.applied, vec![1]);
    }

    #[test]
    fn refuses_a_table_it_did_not_create() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE vcons (x)").unwrap();
        assert!(matches!(
            provision(&mut conn, &table(), false),
            Err(ProvisionError::ForeignTable)
        ));
        // Nothing was left behind by the refused attempt.
        assert_eq!(current_version(&conn, &table()).unwrap(), 0);
        assert!(!table_exists(&conn, "vcons_schema_migrations").unwrap());
        assert!(conn.is_autocommit());
    }

    #[test]
    fn tables_migrate_independently() {
        let mut conn = Connection::open_in_memory().unwrap();
        let other = TableName::new("other").unwrap();
        provision(&mut conn, &table(), false).unwrap();
        assert_eq!(current_version(&conn, &other).unwrap(), 0);
        assert_eq!(
            provision(&mut conn, &other, false).unwrap().applied,
            vec![1]
        );
        provision(&mut conn, &other, true).unwrap();
        assert_eq!(current_version(&conn, &table()).unwrap(), 1);
    }

    #[test]
    fn every_statement_prepares_and_listing_walks_the_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        provision(&mut conn, &table(), false).unwrap();
        let sql = Statements::new(&table());
        for statement in [
            &sql.upsert,
            &sql.get,
            &sql.exists,
            &sql.delete,
            &sql.count,
            &sql.clear,
            &sql.list_first,
            &sql.list_after,
            &sql.query,
        ] {
            conn.prepare(statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        for (statement, after) in [(&sql.list_first, false), (&sql.list_after, true)] {
            let mut explain = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
                .unwrap();
            let detail = |row: &rusqlite::Row<'_>| row.get::<_, String>(3);
            let plan: Vec<String> = if after {
                explain.query_map(params!["2024-01-01T00:00:00.000000Z", "u", 10], detail)
            } else {
                explain.query_map(params![10], detail)
            }
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
            let plan = plan.join(" | ");
            assert!(plan.contains("vcons_created_at_idx"), "{plan}");
            assert!(
                !plan.contains("TEMP B-TREE"),
                "sorts instead of walking the index: {plan}"
            );
        }
    }
}
