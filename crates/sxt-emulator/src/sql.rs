//! The SQL side: a statement gate in the shape of Space and Time's dialect, biscuit checks per
//! table, and execution on an embedded SQLite database.
//!
//! The gate parses each statement with `sqlparser` and accepts only what a Space and Time client
//! can rely on: one statement of `SELECT`, `INSERT ... VALUES`, `UPDATE`, `DELETE`,
//! `CREATE SCHEMA`, `CREATE TABLE ... WITH "public_key=...,access_type=..."` and `DROP TABLE`.
//! Anything SQLite-only (`ON CONFLICT`, `INSERT OR REPLACE`, `RETURNING`, double-quoted string
//! literals) is refused, so a client cannot pass here and fail on the real service for that.
//! Every table is named `SCHEMA.TABLE`; schemas are SQLite databases attached in memory.
//!
//! Answers follow what is known of the service: a `SELECT` gives an array of row objects with
//! upper-case column names, DML gives `[{"UPDATED": n}]`, DDL gives `[]`, and a duplicate key
//! is the Ignite message `Duplicate key during INSERT [key=...]`.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use biscuit_auth::PublicKey;
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{json, Map, Value};
use sqlparser::ast::{
    visit_relations, ObjectName, ObjectNamePart, ObjectType, SchemaName, SetExpr, Statement,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::biscuits::authorize;
use crate::keys::public_key;

/// The longest VARCHAR without a declared size, in characters (the documented default).
pub const VARCHAR_MAX: usize = 65_536;

/// The column types Space and Time documents; anything else (TEXT, JSONB, UUID...) is refused.
const TYPES: &[&str] = &[
    "VARCHAR",
    "CHAR",
    "TINYINT",
    "SMALLINT",
    "INT",
    "INTEGER",
    "BIGINT",
    "DECIMAL",
    "DOUBLE",
    "REAL",
    "BOOLEAN",
    "DATE",
    "TIMESTAMP",
];

/// A refusal: the HTTP status and the message for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqlError {
    pub(crate) status: u16,
    pub(crate) message: String,
}

fn bad(message: impl Into<String>) -> SqlError {
    SqlError {
        status: 400,
        message: message.into(),
    }
}

/// Who may do what on a table without a biscuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccessType {
    Permissioned,
    PublicRead,
    PublicAppend,
    PublicWrite,
}

impl AccessType {
    fn parse(text: &str) -> Result<Self, SqlError> {
        match text.to_ascii_lowercase().as_str() {
            "permissioned" => Ok(Self::Permissioned),
            "public_read" => Ok(Self::PublicRead),
            "public_append" => Ok(Self::PublicAppend),
            "public_write" => Ok(Self::PublicWrite),
            other => Err(bad(format!("unknown access_type {other:?}"))),
        }
    }

    /// Whether `operation` needs no biscuit on a table of this access type.
    fn opens(self, operation: &str) -> bool {
        match self {
            Self::Permissioned => false,
            Self::PublicRead => operation == "dql_select",
            Self::PublicAppend => matches!(operation, "dql_select" | "dml_insert"),
            Self::PublicWrite => operation.starts_with("dql_") || operation.starts_with("dml_"),
        }
    }
}

/// What the emulator knows of a table beyond SQLite's schema.
#[derive(Debug, Clone)]
struct TableMeta {
    key: PublicKey,
    access: AccessType,
}

/// The database: one SQLite connection, the schemas attached to it, and each table's key.
#[derive(Debug)]
pub(crate) struct Db {
    conn: Connection,
    schemas: HashSet<String>,
    tables: HashMap<String, TableMeta>,
}

/// What one statement is, once parsed.
enum Kind {
    Select,
    Dml(&'static str),
    CreateSchema {
        name: String,
        if_not_exists: bool,
    },
    CreateTable {
        table: String,
        if_not_exists: bool,
        options: HashMap<String, String>,
    },
    DropTable {
        table: String,
        if_exists: bool,
    },
}

impl Db {
    pub(crate) fn new() -> Result<Self, String> {
        let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
        // A double-quoted string is an identifier, never a literal, as in standard SQL.
        for config in [
            DbConfig::SQLITE_DBCONFIG_DQS_DML,
            DbConfig::SQLITE_DBCONFIG_DQS_DDL,
        ] {
            conn.set_db_config(config, false)
                .map_err(|e| e.to_string())?;
        }
        Ok(Self {
            conn,
            schemas: HashSet::new(),
            tables: HashMap::new(),
        })
    }

    /// Runs one statement for a client holding `biscuits`.
    pub(crate) fn run(&mut self, sql: &str, biscuits: &[String]) -> Result<Value, SqlError> {
        let sql = sql.trim().trim_end_matches(';').trim_end();
        let (sql, with) = split_with_clause(sql)?;
        let statements = Parser::parse_sql(&GenericDialect {}, sql)
            .map_err(|err| bad(format!("SQL parse error: {err}")))?;
        let [statement] = statements.as_slice() else {
            return Err(bad(format!(
                "exactly one statement per request, got {}",
                statements.len()
            )));
        };
        let kind = classify(statement, with)?;
        match kind {
            Kind::Select => {
                let tables = relations(statement)?;
                self.authorize_all(&tables, "dql_select", biscuits)?;
                self.select(sql)
            }
            Kind::Dml(operation) => {
                let tables = relations(statement)?;
                self.authorize_all(&tables, operation, biscuits)?;
                self.dml(sql)
            }
            Kind::CreateSchema {
                name,
                if_not_exists,
            } => self.create_schema(&name, if_not_exists),
            Kind::CreateTable {
                table,
                if_not_exists,
                options,
            } => self.create_table(sql, &table, if_not_exists, &options, biscuits),
            Kind::DropTable { table, if_exists } => {
                if !self.tables.contains_key(&table) {
                    return if if_exists {
                        Ok(json!([]))
                    } else {
                        Err(not_found(&table))
                    };
                }
                self.authorize_all(std::slice::from_ref(&table), "ddl_drop", biscuits)?;
                let (schema, name) = split_table(&table);
                self.conn
                    .execute_batch(&format!("DROP TABLE \"{schema}\".\"{name}\""))
                    .map_err(|err| bad(err.to_string()))?;
                self.tables.remove(&table);
                Ok(json!([]))
            }
        }
    }

    /// Runs SQL with no gate and no biscuits, for tests that inspect what was stored.
    pub(crate) fn inspect(&mut self, sql: &str) -> Result<Value, SqlError> {
        self.select(sql)
    }

    /// Registers a schema without a request.
    pub(crate) fn create_schema(
        &mut self,
        name: &str,
        if_not_exists: bool,
    ) -> Result<Value, SqlError> {
        let name = name.to_ascii_uppercase();
        if self.schemas.contains(&name) {
            return if if_not_exists {
                Ok(json!([]))
            } else {
                Err(bad(format!("Schema {name} already exists")))
            };
        }
        self.conn
            .execute_batch(&format!("ATTACH DATABASE ':memory:' AS \"{name}\""))
            .map_err(|err| bad(err.to_string()))?;
        self.schemas.insert(name);
        Ok(json!([]))
    }

    fn authorize_all(
        &self,
        tables: &[String],
        operation: &str,
        biscuits: &[String],
    ) -> Result<(), SqlError> {
        for table in tables {
            let meta = self.tables.get(table).ok_or_else(|| not_found(table))?;
            if meta.access.opens(operation) {
                continue;
            }
            authorize(biscuits, &meta.key, operation, table).map_err(forbidden)?;
        }
        Ok(())
    }

    fn create_table(
        &mut self,
        sql: &str,
        table: &str,
        if_not_exists: bool,
        options: &HashMap<String, String>,
        biscuits: &[String],
    ) -> Result<Value, SqlError> {
        let key_hex = options
            .get("public_key")
            .or_else(|| options.get("publickey"))
            .ok_or_else(|| bad("CREATE TABLE needs WITH \"public_key=<hex>,access_type=...\""))?;
        let key = public_key(key_hex).map_err(bad)?;
        let access = match options
            .get("access_type")
            .or_else(|| options.get("accesstype"))
        {
            Some(text) => AccessType::parse(text)?,
            None => AccessType::Permissioned,
        };
        authorize(biscuits, &key, "ddl_create", table).map_err(forbidden)?;
        let (schema, name) = split_table(table);
        if !self.schemas.contains(&schema) {
            return Err(bad(format!(
                "Schema {schema} does not exist: CREATE SCHEMA {schema} first"
            )));
        }
        if self.tables.contains_key(table) {
            return if if_not_exists {
                Ok(json!([]))
            } else {
                Err(bad(format!(
                    "Table {} already exists",
                    table.to_ascii_uppercase()
                )))
            };
        }
        self.conn
            .execute_batch(sql)
            .map_err(|err| bad(err.to_string()))?;
        if let Err(err) = self.check_columns(&schema, &name) {
            let _ = self
                .conn
                .execute_batch(&format!("DROP TABLE \"{schema}\".\"{name}\""));
            return Err(err);
        }
        self.tables
            .insert(table.to_owned(), TableMeta { key, access });
        Ok(json!([]))
    }

    /// Refuses column types Space and Time does not have and tables without a primary key, and
    /// enforces VARCHAR sizes with triggers (SQLite itself ignores them).
    fn check_columns(&mut self, schema: &str, name: &str) -> Result<(), SqlError> {
        let columns: Vec<(String, String, i64)> = {
            let mut statement = self
                .conn
                .prepare(&format!("PRAGMA \"{schema}\".table_info(\"{name}\")"))
                .map_err(|err| bad(err.to_string()))?;
            let rows = statement
                .query_map([], |row| Ok((row.get(1)?, row.get(2)?, row.get(5)?)))
                .map_err(|err| bad(err.to_string()))?;
            rows.collect::<Result<_, _>>()
                .map_err(|err| bad(err.to_string()))?
        };
        if !columns.iter().any(|(_, _, pk)| *pk > 0) {
            return Err(bad("a table needs a PRIMARY KEY"));
        }
        for (column, declared, _) in &columns {
            let upper = declared.to_ascii_uppercase();
            let base = upper.split('(').next().unwrap_or("").trim();
            if !TYPES.contains(&base) {
                return Err(bad(format!(
                    "column {column}: type {declared} is not supported (use one of {})",
                    TYPES.join(", ")
                )));
            }
            if base == "VARCHAR" || base == "CHAR" {
                let size = upper
                    .split_once('(')
                    .and_then(|(_, rest)| rest.trim_end_matches(')').trim().parse::<usize>().ok())
                    .unwrap_or(VARCHAR_MAX);
                if size > VARCHAR_MAX {
                    return Err(bad(format!(
                        "column {column}: {declared} is over the {VARCHAR_MAX} character maximum"
                    )));
                }
                for event in ["INSERT", "UPDATE"] {
                    self.conn
                        .execute_batch(&format!(
                            "CREATE TRIGGER \"{schema}\".\"{name}_{column}_{event}_len\" \
                             BEFORE {event} ON \"{name}\" \
                             WHEN length(NEW.\"{column}\") > {size} BEGIN \
                             SELECT RAISE(ABORT, 'Value too long for column {column} \
                             VARCHAR({size})'); END"
                        ))
                        .map_err(|err| bad(err.to_string()))?;
                }
            }
        }
        Ok(())
    }

    fn select(&mut self, sql: &str) -> Result<Value, SqlError> {
        let mut statement = self.conn.prepare(sql).map_err(|err| sqlite_error(&err))?;
        let names: Vec<String> = statement
            .column_names()
            .iter()
            .map(|n| n.to_ascii_uppercase())
            .collect();
        let mut rows = statement.query([]).map_err(|err| sqlite_error(&err))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|err| sqlite_error(&err))? {
            let mut object = Map::new();
            for (i, name) in names.iter().enumerate() {
                let value = match row.get_ref(i).map_err(|err| sqlite_error(&err))? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => json!(n),
                    ValueRef::Real(x) => json!(x),
                    ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
                };
                object.insert(name.clone(), value);
            }
            out.push(Value::Object(object));
        }
        Ok(Value::Array(out))
    }

    fn dml(&mut self, sql: &str) -> Result<Value, SqlError> {
        let changed = self
            .conn
            .execute(sql, [])
            .map_err(|err| sqlite_error(&err))?;
        Ok(json!([{ "UPDATED": changed }]))
    }
}

fn not_found(table: &str) -> SqlError {
    SqlError {
        status: 404,
        message: format!("Table {} not found", table.to_ascii_uppercase()),
    }
}

fn forbidden(reason: String) -> SqlError {
    SqlError {
        status: 403,
        message: format!("Forbidden: biscuit authorization failed - {reason}"),
    }
}

/// SQLite's errors in the service's words where they are known.
fn sqlite_error(err: &rusqlite::Error) -> SqlError {
    if let rusqlite::Error::SqliteFailure(code, message) = err {
        let text = message.clone().unwrap_or_default();
        if code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        {
            return bad(format!("Duplicate key during INSERT [{text}]"));
        }
        if code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER {
            return bad(text);
        }
        return bad(format!("SQL error: {text}"));
    }
    bad(format!("SQL error: {err}"))
}

/// The options of a `WITH "k=v,k=v"` clause, keys lower-cased.
type TableOptions = HashMap<String, String>;

/// Splits `CREATE TABLE ... ) WITH "k=v,k=v"` into the statement and its options.
fn split_with_clause(sql: &str) -> Result<(&str, Option<TableOptions>), SqlError> {
    let upper = sql.to_ascii_uppercase();
    if !upper.starts_with("CREATE") || !upper.contains("TABLE") {
        return Ok((sql, None));
    }
    let Some(close) = sql.rfind(')') else {
        return Ok((sql, None));
    };
    let tail = sql[close + 1..].trim();
    if tail.is_empty() {
        return Ok((sql, None));
    }
    let quoted = tail
        .get(..4)
        .filter(|w| w.eq_ignore_ascii_case("WITH"))
        .map(|_| tail[4..].trim())
        .and_then(|rest| rest.strip_prefix('"'))
        .and_then(|rest| rest.strip_suffix('"'))
        .ok_or_else(|| bad(format!("cannot read the table options {tail:?}: expected WITH \"public_key=...,access_type=...\"")))?;
    let mut options = HashMap::new();
    for pair in quoted.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("table option {pair:?} is not key=value")))?;
        options.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    Ok((&sql[..=close], Some(options)))
}

fn classify(
    statement: &Statement,
    with: Option<HashMap<String, String>>,
) -> Result<Kind, SqlError> {
    if with.is_some() && !matches!(statement, Statement::CreateTable(_)) {
        return Err(bad("a WITH clause only follows CREATE TABLE"));
    }
    match statement {
        Statement::Query(_) => Ok(Kind::Select),
        Statement::Insert(insert) => {
            let values = insert
                .source
                .as_ref()
                .is_some_and(|q| matches!(*q.body, SetExpr::Values(_)));
            if !values || insert.or.is_some() || insert.on.is_some() || insert.returning.is_some() {
                return Err(bad(
                    "only INSERT INTO SCHEMA.TABLE (columns) VALUES (...) is supported",
                ));
            }
            Ok(Kind::Dml("dml_insert"))
        }
        Statement::Update(_) => Ok(Kind::Dml("dml_update")),
        Statement::Delete(_) => Ok(Kind::Dml("dml_delete")),
        Statement::CreateSchema {
            schema_name: SchemaName::Simple(name),
            if_not_exists,
            ..
        } => {
            let parts = name_parts(name)?;
            let [schema] = parts.as_slice() else {
                return Err(bad("a schema name is one identifier"));
            };
            Ok(Kind::CreateSchema {
                name: schema.clone(),
                if_not_exists: *if_not_exists,
            })
        }
        Statement::CreateTable(create) => Ok(Kind::CreateTable {
            table: qualified(&create.name)?,
            if_not_exists: create.if_not_exists,
            options: with.ok_or_else(|| {
                bad("CREATE TABLE needs WITH \"public_key=<hex>,access_type=...\"")
            })?,
        }),
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            ..
        } => {
            let [name] = names.as_slice() else {
                return Err(bad("drop one table at a time"));
            };
            Ok(Kind::DropTable {
                table: qualified(name)?,
                if_exists: *if_exists,
            })
        }
        other => Err(bad(format!(
            "statement not supported: {}",
            other.to_string().chars().take(60).collect::<String>()
        ))),
    }
}

/// Every table a DML or query statement touches, as `schema.table` lower-cased.
fn relations(statement: &Statement) -> Result<Vec<String>, SqlError> {
    let mut tables = Vec::new();
    let mut error = None;
    let _ = visit_relations(statement, |name| match qualified(name) {
        Ok(table) => {
            if !tables.contains(&table) {
                tables.push(table);
            }
            ControlFlow::<()>::Continue(())
        }
        Err(err) => {
            error = Some(err);
            ControlFlow::Break(())
        }
    });
    match error {
        Some(err) => Err(err),
        None if tables.is_empty() => Err(bad("the statement names no table")),
        None => Ok(tables),
    }
}

fn name_parts(name: &ObjectName) -> Result<Vec<String>, SqlError> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(ident.value.clone()),
            ObjectNamePart::Function(_) => Err(bad(format!("unsupported name {name}"))),
        })
        .collect()
}

fn qualified(name: &ObjectName) -> Result<String, SqlError> {
    match name_parts(name)?.as_slice() {
        [schema, table] => Ok(format!("{schema}.{table}").to_ascii_lowercase()),
        _ => Err(bad(format!("table {name} must be named SCHEMA.TABLE"))),
    }
}

fn split_table(table: &str) -> (String, String) {
    let (schema, name) = table.split_once('.').unwrap_or(("", table));
    (schema.to_ascii_uppercase(), name.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keys::TableKeys;

    fn db_with_table() -> (Db, TableKeys) {
        let mut db = Db::new().unwrap();
        let keys = TableKeys::generate();
        db.run("CREATE SCHEMA T1", &[]).unwrap();
        let ddl = keys.biscuit(&["ddl_create"], "t1.v");
        db.run(
            &format!(
                "CREATE TABLE T1.V (ID VARCHAR, BODY VARCHAR(5), PRIMARY KEY (ID)) \
                 WITH \"public_key={},access_type=permissioned\"",
                keys.public_hex
            ),
            &[ddl],
        )
        .unwrap();
        (db, keys)
    }

    #[test]
    fn rows_have_upper_case_keys_and_dml_counts() {
        let (mut db, keys) = db_with_table();
        let all = vec![keys.biscuit(&["*"], "t1.v")];
        let answer = db
            .run(
                "INSERT INTO T1.V (ID, BODY) VALUES ('a', 'x'), ('b', 'y')",
                &all,
            )
            .unwrap();
        assert_eq!(answer, json!([{"UPDATED": 2}]));
        let rows = db
            .run("select id, body from t1.v order by id", &all)
            .unwrap();
        assert_eq!(
            rows,
            json!([{"ID": "a", "BODY": "x"}, {"ID": "b", "BODY": "y"}])
        );
        let answer = db
            .run("UPDATE T1.V SET BODY = 'z' WHERE ID = 'q'", &all)
            .unwrap();
        assert_eq!(answer, json!([{"UPDATED": 0}]));
    }

    #[test]
    fn duplicate_keys_and_varchar_limits() {
        let (mut db, keys) = db_with_table();
        let all = vec![keys.biscuit(&["*"], "t1.v")];
        db.run("INSERT INTO T1.V (ID, BODY) VALUES ('a', 'x')", &all)
            .unwrap();
        let err = db
            .run("INSERT INTO T1.V (ID, BODY) VALUES ('a', 'x')", &all)
            .unwrap_err();
        assert!(
            err.message.contains("Duplicate key during INSERT"),
            "{err:?}"
        );
        let err = db
            .run("INSERT INTO T1.V (ID, BODY) VALUES ('b', 'toolong')", &all)
            .unwrap_err();
        assert!(err.message.contains("too long"), "{err:?}");
    }

    #[test]
    fn sqlite_only_syntax_is_refused() {
        let (mut db, keys) = db_with_table();
        let all = vec![keys.biscuit(&["*"], "t1.v")];
        for sql in [
            "INSERT INTO T1.V (ID) VALUES ('a') ON CONFLICT DO NOTHING",
            "INSERT OR REPLACE INTO T1.V (ID) VALUES ('a')",
            "INSERT INTO T1.V (ID) SELECT ID FROM T1.V",
            "SELECT * FROM T1.V; DELETE FROM T1.V",
            "SELECT * FROM V",
            "PRAGMA foo",
            "SELECT * FROM T1.V WHERE ID = \"a\"",
        ] {
            assert!(db.run(sql, &all).is_err(), "{sql}");
        }
    }

    #[test]
    fn biscuits_are_checked_per_operation() {
        let (mut db, keys) = db_with_table();
        let read = vec![keys.biscuit(&["dql_select"], "t1.v")];
        assert!(db.run("SELECT * FROM T1.V", &read).is_ok());
        let err = db.run("DELETE FROM T1.V", &read).unwrap_err();
        assert_eq!(err.status, 403);
        let err = db.run("SELECT * FROM T1.NOPE", &read).unwrap_err();
        assert_eq!(err.status, 404);
    }

    #[test]
    fn unsupported_types_and_missing_keys_are_refused() {
        let mut db = Db::new().unwrap();
        let keys = TableKeys::generate();
        db.run("CREATE SCHEMA S", &[]).unwrap();
        let ddl = vec![keys.biscuit(&["ddl_create"], "s.t")];
        let create = |cols: &str| {
            format!(
                "CREATE TABLE S.T ({cols}) WITH \"public_key={},access_type=permissioned\"",
                keys.public_hex
            )
        };
        assert!(db.run(&create("ID TEXT, PRIMARY KEY (ID)"), &ddl).is_err());
        assert!(db.run(&create("ID VARCHAR"), &ddl).is_err());
        assert!(db
            .run("CREATE TABLE S.T (ID VARCHAR, PRIMARY KEY (ID))", &ddl)
            .is_err());
        let wrong = vec![TableKeys::generate().biscuit(&["ddl_create"], "s.t")];
        let err = db
            .run(&create("ID VARCHAR, PRIMARY KEY (ID)"), &wrong)
            .unwrap_err();
        assert_eq!(err.status, 403);
        db.run(&create("ID VARCHAR, PRIMARY KEY (ID)"), &ddl)
            .unwrap();
        let err = db
            .run(&create("ID VARCHAR, PRIMARY KEY (ID)"), &ddl)
            .unwrap_err();
        assert!(err.message.contains("already exists"), "{err:?}");
    }
}
