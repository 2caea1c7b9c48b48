//! The table, its versioned migrations, how an existing table is recognised, and every SQL
//! statement the storage runs.
//!
//! Migrations are recorded in one table per database, [`MIGRATIONS_TABLE`]
//! `(table_name, version, description, adopted, applied_at)`, so several storages with
//! different `table_name`s in one database migrate and are recreated independently.
//! [`provision`] runs in one transaction (DDL is transactional in PostgreSQL: a failed
//! migration leaves nothing behind) under a transaction-scoped advisory lock, so two hosts
//! provisioning at once take turns instead of racing on `CREATE TABLE`. It runs at open when
//! something is missing (with `create: true`) or on request, never on a save: the Python
//! module's `CREATE TABLE IF NOT EXISTS` before every insert is what this replaces.
//!
//! A table the Python server created has the same columns with `timestamp` (without time zone)
//! types. It is used as it is: [`inspect`] reads the column types into a [`Layout`], the
//! statements are written for that layout (naive UTC values for `timestamp` columns), and
//! `provision` records the table as *adopted* without altering it.

use std::collections::HashMap;

use tokio_postgres::GenericClient;

use crate::error::Error;
use crate::options::TableName;

/// Where migrations are recorded (in the first schema of the connection's `search_path`, as
/// the vCon table).
pub const MIGRATIONS_TABLE: &str = "vcon_host_schema_migrations";

/// The advisory lock every `provision` in a database takes (`"vconhost"` in ASCII).
const LOCK_KEY: i64 = 0x7663_6f6e_686f_7374;

/// One schema change: its version, what it does, and its SQL for a given table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// Applied in increasing order; recorded in the migrations table.
    pub(crate) version: i32,
    /// One line for the migrations table.
    pub(crate) description: &'static str,
    /// The statements, given the table's name.
    sql: fn(&TableName) -> String,
}

/// Every migration, oldest first. Append only: a released migration never changes, since
/// databases already carry its record.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "create the vCon table (the Python server's columns, timestamptz) with uuid and \
                  created_at indexes",
    sql: migration_1,
}];

/// The schema version this build writes.
pub(crate) fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The Python server's table with time zones: `created_at` is an instant (the document's
/// offset is not silently dropped, as a `timestamp` column does), `updated_at` the time of the
/// last write. The `(created_at, id)` index is the order `list` walks; the `uuid` index keeps
/// queries written against the Python table's `uuid` column fast.
fn migration_1(table: &TableName) -> String {
    let t = table.quoted();
    let uuid_idx = table.quoted_with_suffix("uuid_idx");
    let created_idx = table.quoted_with_suffix("created_at_idx");
    format!(
        "CREATE TABLE {t} (
            id         uuid PRIMARY KEY,
            vcon       text,
            uuid       uuid NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            subject    text,
            vcon_json  jsonb NOT NULL
        );
        CREATE INDEX {uuid_idx} ON {t} (uuid);
        CREATE INDEX {created_idx} ON {t} (created_at, id);"
    )
}

/// The timestamp types of a vCon table's columns, which decide how values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// `created_at` is `timestamptz` (else `timestamp`, holding UTC).
    pub(crate) created_at_tz: bool,
    /// `updated_at` is `timestamptz` (else `timestamp`, holding UTC).
    pub(crate) updated_at_tz: bool,
}

impl Layout {
    /// The layout migration 1 creates.
    pub(crate) const NATIVE: Self = Self {
        created_at_tz: true,
        updated_at_tz: true,
    };

    /// One word for `status` and `provision` reports.
    pub(crate) fn describe(self) -> &'static str {
        match (self.created_at_tz, self.updated_at_tz) {
            (true, true) => "timestamptz",
            (false, false) => "python (timestamp without time zone, UTC)",
            _ => "mixed (timestamp columns hold UTC)",
        }
    }
}

/// What [`inspect`] found about an existing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableInfo {
    /// Its column types.
    pub(crate) layout: Layout,
    /// The latest migration recorded for it (0: none, e.g. a Python table not yet adopted).
    pub(crate) version: i32,
    /// Whether it was recorded as adopted (created by someone else, used as it is).
    pub(crate) adopted: bool,
}

/// Looks at `table` (resolved through `search_path`, as the statements resolve it): `None` when
/// it does not exist, its layout and recorded version when it is a vCon table, and
/// [`Error::ForeignTable`] when its columns are not a vCon table's.
pub(crate) async fn inspect<C: GenericClient>(
    client: &C,
    table: &TableName,
) -> Result<Option<TableInfo>, Error> {
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
             FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = to_regclass($1::text) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table.quoted()],
        )
        .await
        .map_err(|e| Error::sql(format!("reading the columns of table {table}"), e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut columns = HashMap::new();
    for row in &rows {
        let name: String = row
            .try_get(0)
            .map_err(|e| Error::sql("reading a column name", e))?;
        let ty: String = row
            .try_get(1)
            .map_err(|e| Error::sql("reading a column type", e))?;
        columns.insert(name, ty);
    }
    let layout = layout_of(&columns).map_err(|problems| Error::ForeignTable {
        table: table.to_string(),
        problems,
    })?;
    let (version, adopted) = recorded_version(client, table).await?;
    Ok(Some(TableInfo {
        layout,
        version,
        adopted,
    }))
}

/// The layout of a table with these `column -> type` pairs, or what does not match a vCon
/// table (the Python server's columns, with either timestamp type).
fn layout_of(columns: &HashMap<String, String>) -> Result<Layout, String> {
    let mut problems = Vec::new();
    let mut check = |name: &str, ok: fn(&str) -> bool, expected: &str| -> Option<String> {
        match columns.get(name) {
            None => {
                problems.push(format!("no column {name}"));
                None
            }
            Some(ty) if !ok(ty) => {
                problems.push(format!("column {name} is {ty}, not {expected}"));
                None
            }
            Some(ty) => Some(ty.clone()),
        }
    };
    let text = |ty: &str| ty == "text" || ty.starts_with("character varying");
    let stamp = |ty: &str| {
        ty == "timestamp with time zone" || ty.starts_with("timestamp without time zone")
    };
    check("id", |ty| ty == "uuid", "uuid");
    check("vcon", text, "text");
    check("uuid", |ty| ty == "uuid", "uuid");
    let created = check("created_at", stamp, "timestamptz or timestamp");
    let updated = check("updated_at", stamp, "timestamptz or timestamp");
    check("subject", text, "text");
    check("vcon_json", |ty| ty == "jsonb", "jsonb");
    match (created, updated) {
        (Some(created), Some(updated)) if problems.is_empty() => Ok(Layout {
            created_at_tz: created == "timestamp with time zone",
            updated_at_tz: updated == "timestamp with time zone",
        }),
        _ => Err(problems.join(", ")),
    }
}

/// The latest version recorded for `table`, and whether it was adopted: `(0, false)` when
/// nothing is recorded (or there is no migrations table yet, or the role may not read it).
async fn recorded_version<C: GenericClient>(
    client: &C,
    table: &TableName,
) -> Result<(i32, bool), Error> {
    let row = client
        .query_one(
            // A role that may not read the records (a read-only role on an adopted table)
            // sees none, rather than failing: the table itself is what it needs.
            "SELECT COALESCE(has_table_privilege(to_regclass($1::text), 'SELECT'), false)",
            &[&MIGRATIONS_TABLE],
        )
        .await
        .map_err(|e| Error::sql("looking for the migrations table", e))?;
    let present: bool = row
        .try_get(0)
        .map_err(|e| Error::sql("looking for the migrations table", e))?;
    if !present {
        return Ok((0, false));
    }
    let row = client
        .query_one(
            &format!(
                "SELECT COALESCE(max(version), 0), COALESCE(bool_or(adopted), false)
                 FROM {MIGRATIONS_TABLE} WHERE table_name = $1"
            ),
            &[&table.as_str()],
        )
        .await
        .map_err(|e| Error::sql(format!("reading the schema version of table {table}"), e))?;
    let version: i32 = row
        .try_get(0)
        .map_err(|e| Error::sql("reading the schema version", e))?;
    let adopted: bool = row
        .try_get(1)
        .map_err(|e| Error::sql("reading the schema version", e))?;
    Ok((version, adopted))
}

/// What [`provision`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Provisioned {
    /// Whether the table and its records were dropped first.
    pub(crate) recreated: bool,
    /// Whether an existing table was recorded as adopted now.
    pub(crate) adopted_now: bool,
    /// The migrations applied now (empty when the schema was up to date).
    pub(crate) applied: Vec<i32>,
    /// What the table is afterwards.
    pub(crate) info: TableInfo,
}

/// Brings `table` to the latest schema in one transaction under the provisioning lock; with
/// `recreate`, drops the table and its migration records first. An existing vCon table without
/// records (the Python server's) is recorded as adopted and left as it is. Running it again is
/// a no-op.
pub(crate) async fn provision(
    client: &mut tokio_postgres::Client,
    table: &TableName,
    recreate: bool,
) -> Result<Provisioned, Error> {
    let fail = |what: &str| {
        let what = format!("provisioning table {table}: {what}");
        move |e| Error::sql(what, e)
    };
    let tx = client.transaction().await.map_err(fail("BEGIN"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(fail("taking the provisioning lock"))?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
            table_name  text NOT NULL,
            version     integer NOT NULL,
            description text NOT NULL,
            adopted     boolean NOT NULL DEFAULT false,
            applied_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (table_name, version)
        )"
    ))
    .await
    .map_err(fail("creating the migrations table"))?;
    let forget = format!("DELETE FROM {MIGRATIONS_TABLE} WHERE table_name = $1");
    if recreate {
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", table.quoted()))
            .await
            .map_err(fail("dropping the table"))?;
        tx.execute(&forget, &[&table.as_str()])
            .await
            .map_err(fail("forgetting its migrations"))?;
    }
    let record = format!(
        "INSERT INTO {MIGRATIONS_TABLE} (table_name, version, description, adopted)
         VALUES ($1, $2, $3, $4)"
    );

    let mut applied = Vec::new();
    let mut adopted_now = false;
    let info = match inspect(&tx, table).await? {
        Some(info) if info.version == 0 => {
            // A vCon table this plugin did not create (the Python server's): record it as it
            // is. Later migrations, when there are any, apply on top.
            let description = format!(
                "adopted an existing table ({}) without altering it",
                info.layout.describe()
            );
            tx.execute(
                &record,
                &[&table.as_str(), &latest_version(), &description, &true],
            )
            .await
            .map_err(fail("recording the adoption"))?;
            adopted_now = true;
            TableInfo {
                version: latest_version(),
                adopted: true,
                ..info
            }
        }
        Some(info) => {
            for migration in MIGRATIONS.iter().filter(|m| m.version > info.version) {
                apply(&tx, table, migration, &record).await?;
                applied.push(migration.version);
            }
            TableInfo {
                version: info.version.max(latest_version()),
                ..info
            }
        }
        None => {
            // Records without a table: it was dropped by hand. Start again.
            tx.execute(&forget, &[&table.as_str()])
                .await
                .map_err(fail("forgetting the migrations of a dropped table"))?;
            for migration in MIGRATIONS {
                apply(&tx, table, migration, &record).await?;
                applied.push(migration.version);
            }
            TableInfo {
                layout: Layout::NATIVE,
                version: latest_version(),
                adopted: false,
            }
        }
    };
    tx.commit().await.map_err(fail("COMMIT"))?;
    Ok(Provisioned {
        recreated: recreate,
        adopted_now,
        applied,
        info,
    })
}

/// Runs one migration and records it, inside the provisioning transaction.
async fn apply(
    tx: &tokio_postgres::Transaction<'_>,
    table: &TableName,
    migration: &Migration,
    record: &str,
) -> Result<(), Error> {
    let action = || {
        format!(
            "provisioning table {table}: migration {} ({})",
            migration.version, migration.description
        )
    };
    tx.batch_execute(&(migration.sql)(table))
        .await
        .map_err(|e| Error::sql(action(), e))?;
    tx.execute(
        record,
        &[
            &table.as_str(),
            &migration.version,
            &migration.description,
            &false,
        ],
    )
    .await
    .map_err(|e| Error::sql(action(), e))?;
    Ok(())
}

/// The SQL of one storage for one table layout, built once (the text is also the key of each
/// connection's prepared-statement cache, so it must not be rebuilt per call).
///
/// Parameters of the upserts: `$1` uuid(s), `$2` created_at(s), `$3` document(s) as jsonb,
/// `$4` subject(s). The `vcon` column (the spec version string, as the Python module fills it)
/// is read by the server from the jsonb it parses anyway, so no JSON is parsed here.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    /// `save`: insert, or replace every column of the row with the same id.
    pub(crate) upsert_one: String,
    /// `save_many`: the same for arrays of values, in one statement.
    pub(crate) upsert_many: String,
    /// `get`: the document.
    pub(crate) get: String,
    /// `get_many`: the documents of an array of uuids.
    pub(crate) get_many: String,
    /// `exists`: whether the row is there, without reading the document.
    pub(crate) exists: String,
    /// `delete`: one row.
    pub(crate) delete: String,
    /// `delete_many`: the rows of an array of uuids, answering which were there.
    pub(crate) delete_many: String,
    /// `count`: every row.
    pub(crate) count: String,
    /// `clear`: every row (the table and its schema stay).
    pub(crate) clear: String,
    /// `list`'s first page: newest first, by the `(created_at, id)` index.
    pub(crate) list_first: String,
    /// `list`'s later pages: the rows after the cursor's `(created_at, id)`.
    pub(crate) list_after: String,
    /// `query`: vCons with a party containing every given field, newest first.
    pub(crate) query: String,
}

impl Statements {
    /// The statements for `table` with `layout`.
    pub(crate) fn new(table: &TableName, layout: Layout) -> Self {
        let t = table.quoted();
        let created_type = if layout.created_at_tz {
            "timestamptz"
        } else {
            "timestamp"
        };
        let now = if layout.updated_at_tz {
            "now()"
        } else {
            "(now() AT TIME ZONE 'UTC')"
        };
        // The Python table's `vcon` is NOT NULL; ours keeps NULL for a document without one.
        let vcon = |doc: &str| {
            if layout == Layout::NATIVE {
                format!("{doc} ->> 'vcon'")
            } else {
                format!("COALESCE({doc} ->> 'vcon', '')")
            }
        };
        let on_conflict = "ON CONFLICT (id) DO UPDATE SET
                 vcon = EXCLUDED.vcon,
                 uuid = EXCLUDED.uuid,
                 created_at = EXCLUDED.created_at,
                 updated_at = EXCLUDED.updated_at,
                 subject = EXCLUDED.subject,
                 vcon_json = EXCLUDED.vcon_json";
        Self {
            upsert_one: format!(
                "INSERT INTO {t} (id, vcon, uuid, created_at, updated_at, subject, vcon_json)
                 VALUES ($1::uuid, {}, $1::uuid, $2::{created_type}, {now}, $4::text, $3::jsonb)
                 {on_conflict}",
                vcon("$3::jsonb")
            ),
            upsert_many: format!(
                "INSERT INTO {t} (id, vcon, uuid, created_at, updated_at, subject, vcon_json)
                 SELECT r.id, {}, r.id, r.created_at, {now}, r.subject, r.doc
                 FROM UNNEST($1::uuid[], $2::{created_type}[], $3::jsonb[], $4::text[])
                      AS r (id, created_at, doc, subject)
                 {on_conflict}",
                vcon("r.doc")
            ),
            get: format!("SELECT vcon_json FROM {t} WHERE id = $1::uuid"),
            get_many: format!("SELECT id, vcon_json FROM {t} WHERE id = ANY($1::uuid[])"),
            exists: format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE id = $1::uuid)"),
            delete: format!("DELETE FROM {t} WHERE id = $1::uuid"),
            delete_many: format!("DELETE FROM {t} WHERE id = ANY($1::uuid[]) RETURNING id"),
            count: format!("SELECT count(*) FROM {t}"),
            clear: format!("DELETE FROM {t}"),
            list_first: format!(
                "SELECT id, created_at FROM {t}
                 ORDER BY created_at DESC, id DESC LIMIT $1::bigint"
            ),
            list_after: format!(
                "SELECT id, created_at FROM {t}
                 WHERE (created_at, id) < ($1::{created_type}, $2::uuid)
                 ORDER BY created_at DESC, id DESC LIMIT $3::bigint"
            ),
            query: format!(
                "SELECT id FROM {t}
                 WHERE vcon_json -> 'parties' @> $1::jsonb
                 ORDER BY created_at DESC, id DESC LIMIT $2::bigint"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect()
    }

    const PYTHON: &[(&str, &str)] = &[
        ("id", "uuid"),
        ("vcon", "text"),
        ("uuid", "uuid"),
        ("created_at", "timestamp without time zone"),
        ("updated_at", "timestamp without time zone"),
        ("subject", "text"),
        ("vcon_json", "jsonb"),
    ];

    #[test]
    fn recognises_both_layouts() {
        let python = layout_of(&columns(PYTHON)).unwrap();
        assert_eq!(
            python,
            Layout {
                created_at_tz: false,
                updated_at_tz: false
            }
        );
        assert!(python.describe().contains("python"));
        let mut ours = columns(PYTHON);
        ours.insert("created_at".into(), "timestamp with time zone".into());
        ours.insert("updated_at".into(), "timestamp with time zone".into());
        ours.insert("extra".into(), "integer".into());
        assert_eq!(layout_of(&ours).unwrap(), Layout::NATIVE);
    }

    #[test]
    fn names_what_does_not_match() {
        // The schema the Python docs show (but the code never creates).
        let drift = columns(&[("uuid", "character varying"), ("data", "jsonb")]);
        let problems = layout_of(&drift).unwrap_err();
        assert!(problems.contains("no column id"), "{problems}");
        assert!(
            problems.contains("column uuid is character varying, not uuid"),
            "{problems}"
        );
        assert!(problems.contains("no column vcon_json"), "{problems}");
    }

    #[test]
    fn statements_follow_the_layout() {
        let table = TableName::new("vcons").unwrap();
        let ours = Statements::new(&table, Layout::NATIVE);
        assert!(ours.upsert_many.contains("$2::timestamptz[]"));
        assert!(ours.upsert_one.contains("now()"));
        assert!(!ours.upsert_one.contains("COALESCE"));
        let python = Statements::new(
            &table,
            Layout {
                created_at_tz: false,
                updated_at_tz: false,
            },
        );
        assert!(python.upsert_many.contains("$2::timestamp[]"));
        assert!(python.upsert_one.contains("AT TIME ZONE 'UTC'"));
        assert!(python.upsert_one.contains("COALESCE"));
        assert!(python.list_after.contains("$1::timestamp,"));
        assert_eq!(latest_version(), 1);
    }
}
