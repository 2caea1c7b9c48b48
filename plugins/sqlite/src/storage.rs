//! [`SqliteStorage`]: opening the file, and every operation of the storage contract.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Datelike, Utc};
use plugin_sdk::{
    BatchResult, Capabilities, ListPage, ListRequest, OpenContext, PartyQuery, ProvisionRequest,
    Storage, StorageError, StoragePlugin, VconRecord,
};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::cursor;
use crate::error::Error;
use crate::options::{Options, TableName};
use crate::pool::Pool;
use crate::schema::{self, ProvisionError, Statements};

/// The page size of `list` when the request gives no limit.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The largest page `list` answers; a larger limit is lowered to it, so one call cannot hold a
/// read connection for the whole table.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// A storage on one table of one SQLite file.
///
/// One write connection and `pool_size` read connections, each used by one call at a time (see
/// the `pool` module); the host may call from any number of threads.
#[derive(Debug)]
pub struct SqliteStorage {
    path: PathBuf,
    table: TableName,
    sql: Statements,
    writer: Pool,
    readers: Pool,
    options: Options,
    /// Whether the table is known to exist at the latest schema version, so operations need
    /// not ask. Only false with `create: false` before a `provision`.
    ready: AtomicBool,
}

/// The current time as stored in `updated_at` and `applied_at`.
pub(crate) fn now_text() -> String {
    timestamp_text(Utc::now())
}

/// RFC 3339 in UTC with exactly six fractional digits: fixed width, so text order is time order.
fn timestamp_text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `created_at` of a record as stored, refused outside years 0..=9999 (where the fixed-width
/// text, and with it the order, would break).
fn created_at_text(record: &VconRecord<'_>) -> Result<String, Error> {
    DateTime::<Utc>::from_timestamp_micros(record.created_at_us)
        .filter(|at| (0..=9999).contains(&at.year()))
        .map(timestamp_text)
        .ok_or_else(|| Error::BadRecord {
            uuid: record.uuid.to_owned(),
            reason: format!(
                "created_at ({} microseconds since 1970) is outside the years 0 to 9999",
                record.created_at_us
            ),
        })
}

/// The document's spec version (`"vcon": "0.0.1"`), for the `vcon` column the Python postgres
/// module fills: read in one pass without building the document (the other keys are skipped,
/// not allocated). `None` when absent or not a string.
fn spec_version(json: &[u8]) -> Option<Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow, default)]
        vcon: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Head<'_>>(json)
        .ok()
        .and_then(|head| head.vcon)
}

/// A record checked and converted to the row's values, before any SQL runs.
struct Row<'a> {
    uuid: &'a str,
    vcon: Option<Cow<'a, str>>,
    created_at: String,
    subject: Option<&'a str>,
    json: &'a str,
}

impl<'a> Row<'a> {
    fn new(record: &VconRecord<'a>) -> Result<Self, Error> {
        if record.uuid.is_empty() {
            return Err(Error::BadRecord {
                uuid: String::new(),
                reason: "the uuid is empty".to_owned(),
            });
        }
        let json = std::str::from_utf8(record.json).map_err(|err| Error::BadRecord {
            uuid: record.uuid.to_owned(),
            reason: format!("the document is not UTF-8 ({err}), so it cannot be stored as text"),
        })?;
        Ok(Self {
            uuid: record.uuid,
            vcon: spec_version(record.json),
            created_at: created_at_text(record)?,
            subject: record.subject,
            json,
        })
    }
}

/// A column read as bytes, whatever SQLite's storage class (the plugin writes text; a row
/// written by hand may be a blob).
fn bytes_of(value: ValueRef<'_>) -> Vec<u8> {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.to_vec(),
        ValueRef::Null => Vec::new(),
        ValueRef::Integer(n) => n.to_string().into_bytes(),
        ValueRef::Real(x) => x.to_string().into_bytes(),
    }
}

impl SqliteStorage {
    /// Opens (and with `create`, creates and migrates) the database for `options`.
    fn open_with(options: Options) -> Result<Self, Error> {
        let table = options.check().map_err(Error::Options)?;
        let path = options.path.clone();
        if options.create {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
        } else if !path.exists() {
            return Err(Error::Missing { path });
        }
        let open_err = |source| Error::Open {
            path: path.clone(),
            source,
        };

        let mut writer = open_connection(&path, &options, options.create).map_err(open_err)?;
        let read_only = writer.is_readonly("main").map_err(open_err)?;
        if read_only {
            tracing::warn!(
                path = %path.display(),
                "the database is read-only for this process: reads work, writes will be refused"
            );
        } else {
            let mode: String = writer
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(open_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(
                    path = %path.display(),
                    journal_mode = %mode,
                    "SQLite refused WAL mode on this file system: readers will wait for writers"
                );
            }
        }
        writer
            .pragma_update(None, "synchronous", options.synchronous.as_sql())
            .map_err(open_err)?;

        let version = schema::current_version(&writer, &table).map_err(open_err)?;
        let latest = schema::latest_version();
        let mut ready = version >= latest;
        if version > latest {
            tracing::warn!(
                table = %table,
                version,
                latest,
                "the table was migrated by a newer version of this plugin; using it as is"
            );
        }
        if !ready && options.create && !read_only {
            let report = schema::provision(&mut writer, &table, false)
                .map_err(|err| provision_error(err, &table, &path))?;
            tracing::info!(
                table = %table,
                path = %path.display(),
                applied = ?report.applied,
                "created the vCon table"
            );
            ready = true;
        } else if !ready {
            tracing::warn!(
                table = %table,
                path = %path.display(),
                "the table is not provisioned (create: false): run provision before storing"
            );
        }

        let readers = (0..options.pool_size)
            .map(|_| {
                let conn = open_connection(&path, &options, false)?;
                // Belt and braces: a read connection can never write.
                conn.pragma_update(None, "query_only", true)?;
                Ok(conn)
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(open_err)?;

        let wait = options.busy_timeout();
        Ok(Self {
            sql: Statements::new(&table),
            writer: Pool::new(vec![writer], wait, "write", path.clone()),
            readers: Pool::new(readers, wait, "read", path.clone()),
            path,
            table,
            options,
            ready: AtomicBool::new(ready),
        })
    }

    /// An [`Error::Sql`] for `action` on this storage's file. Called inside `map_err`
    /// closures, so the message is only built when something failed.
    fn fail(&self, action: impl Into<String>, source: rusqlite::Error) -> Error {
        Error::sql(action, &self.path, source)
    }

    /// Refuses operations on a table that does not exist yet (`create: false` before a
    /// `provision`) with a message saying what to do, rather than SQLite's "no such table".
    /// Once the table is seen, this is one atomic load per call.
    fn ensure_ready(&self) -> Result<(), Error> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let conn = self.readers.get()?;
        let version = schema::current_version(&conn, &self.table)
            .map_err(|e| self.fail("reading the schema version", e))?;
        if version >= schema::latest_version() {
            self.ready.store(true, Ordering::Release);
            Ok(())
        } else {
            Err(Error::NotProvisioned {
                table: self.table.to_string(),
                path: self.path.clone(),
            })
        }
    }

    fn save_one(&self, record: &VconRecord<'_>) -> Result<(), Error> {
        let row = Row::new(record)?;
        self.ensure_ready()?;
        let conn = self.writer.get()?;
        conn.prepare_cached(&self.sql.upsert)
            .and_then(|mut stmt| {
                stmt.execute(params![
                    row.uuid,
                    row.vcon,
                    row.created_at,
                    now_text(),
                    row.subject,
                    row.json
                ])
            })
            .map_err(|e| self.fail(format!("saving vCon {}", row.uuid), e))?;
        Ok(())
    }

    /// All records in one `IMMEDIATE` transaction. Each record is checked before any SQL
    /// runs, and a failing `INSERT` is undone by SQLite on its own (statement atomicity), so one
    /// bad record costs only itself. An error that makes SQLite abandon the whole transaction
    /// (a full disk, an I/O error), a lost lock, or a failed commit fails the batch as a whole:
    /// then nothing was stored and the host retries every record.
    fn save_batch(&self, records: &[VconRecord<'_>]) -> Result<Vec<Result<(), Error>>, Error> {
        let rows: Vec<Result<Row<'_>, Error>> = records.iter().map(Row::new).collect();
        self.ensure_ready()?;
        let mut conn = self.writer.get()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.fail("starting a batch save", e))?;
        let now = now_text();
        let mut results = Vec::with_capacity(rows.len());
        {
            let mut stmt = tx
                .prepare_cached(&self.sql.upsert)
                .map_err(|e| self.fail("preparing a batch save", e))?;
            for row in rows {
                let row = match row {
                    Ok(row) => row,
                    Err(err) => {
                        results.push(Err(err));
                        continue;
                    }
                };
                let saved = stmt.execute(params![
                    row.uuid,
                    row.vcon,
                    row.created_at,
                    now,
                    row.subject,
                    row.json
                ]);
                match saved {
                    Ok(_) => results.push(Ok(())),
                    Err(err) if tx.is_autocommit() => {
                        // SQLite rolled the whole transaction back: nothing of the batch stands.
                        return Err(self.fail(
                            format!(
                                "saving vCon {} in a batch (the batch was rolled back)",
                                row.uuid
                            ),
                            err,
                        ));
                    }
                    Err(err) => {
                        results.push(Err(self.fail(format!("saving vCon {}", row.uuid), err)))
                    }
                }
            }
        }
        tx.commit()
            .map_err(|e| self.fail("committing a batch save", e))?;
        Ok(results)
    }

    fn get_one(&self, uuid: &str) -> Result<Option<Vec<u8>>, Error> {
        self.ensure_ready()?;
        let conn = self.readers.get()?;
        let mut stmt = conn
            .prepare_cached(&self.sql.get)
            .map_err(|e| self.fail("preparing a read", e))?;
        stmt.query_row([uuid], |row| Ok(bytes_of(row.get_ref(0)?)))
            .optional()
            .map_err(|e| self.fail(format!("reading vCon {uuid}"), e))
    }

    fn get_batch(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.ensure_ready()?;
        let mut conn = self.readers.get()?;
        // One read transaction: every answer comes from the same snapshot.
        let tx = conn
            .transaction()
            .map_err(|e| self.fail("starting a batch read", e))?;
        let answers = {
            let mut stmt = tx
                .prepare_cached(&self.sql.get)
                .map_err(|e| self.fail("preparing a batch read", e))?;
            uuids
                .iter()
                .map(|uuid| {
                    stmt.query_row([uuid], |row| Ok(bytes_of(row.get_ref(0)?)))
                        .optional()
                        .map_err(|e| self.fail(format!("reading vCon {uuid}"), e))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        tx.finish()
            .map_err(|e| self.fail("ending a batch read", e))?;
        Ok(answers)
    }

    fn delete_one(&self, uuid: &str) -> Result<bool, Error> {
        self.ensure_ready()?;
        let conn = self.writer.get()?;
        let removed = conn
            .prepare_cached(&self.sql.delete)
            .and_then(|mut stmt| stmt.execute([uuid]))
            .map_err(|e| self.fail(format!("deleting vCon {uuid}"), e))?;
        Ok(removed > 0)
    }

    fn delete_batch(&self, uuids: &[&str]) -> Result<Vec<bool>, Error> {
        self.ensure_ready()?;
        let mut conn = self.writer.get()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.fail("starting a batch delete", e))?;
        let removed = {
            let mut stmt = tx
                .prepare_cached(&self.sql.delete)
                .map_err(|e| self.fail("preparing a batch delete", e))?;
            uuids
                .iter()
                .map(|uuid| {
                    stmt.execute([uuid])
                        .map(|n| n > 0)
                        .map_err(|e| self.fail(format!("deleting vCon {uuid}"), e))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        tx.commit()
            .map_err(|e| self.fail("committing a batch delete", e))?;
        Ok(removed)
    }

    fn exists_one(&self, uuid: &str) -> Result<bool, Error> {
        self.ensure_ready()?;
        let conn = self.readers.get()?;
        conn.prepare_cached(&self.sql.exists)
            .and_then(|mut stmt| stmt.exists([uuid]))
            .map_err(|e| self.fail(format!("looking up vCon {uuid}"), e))
    }

    fn count_rows(&self, conn: &Connection) -> Result<u64, Error> {
        conn.prepare_cached(&self.sql.count)
            .and_then(|mut stmt| stmt.query_row([], |row| row.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or_default())
            .map_err(|e| self.fail("counting vCons", e))
    }

    fn list_page(&self, request: &ListRequest) -> Result<ListPage, Error> {
        let limit = match request.limit {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = request.after.as_deref().map(cursor::decode).transpose()?;
        self.ensure_ready()?;
        let conn = self.readers.get()?;
        // One row more than the page, to know whether there is a next page.
        let fetch = i64::from(limit) + 1;
        let read = |row: &rusqlite::Row<'_>| Ok((row.get::<_, String>(0)?, row.get(1)?));
        let mut rows: Vec<(String, String)> = match &after {
            None => conn
                .prepare_cached(&self.sql.list_first)
                .and_then(|mut stmt| {
                    stmt.query_map(params![fetch], read)?
                        .collect::<Result<_, _>>()
                }),
            Some((created_at, id)) => {
                conn.prepare_cached(&self.sql.list_after)
                    .and_then(|mut stmt| {
                        stmt.query_map(params![created_at, id, fetch], read)?
                            .collect::<Result<_, _>>()
                    })
            }
        }
        .map_err(|e| self.fail("listing vCons", e))?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last()
                .map(|(id, created_at)| cursor::encode(created_at, id))
        } else {
            None
        };
        Ok(ListPage {
            uuids: rows.into_iter().map(|(id, _)| id).collect(),
            next,
        })
    }

    fn query_parties(&self, query: &PartyQuery) -> Result<Vec<String>, Error> {
        if query.tel.is_none() && query.mailto.is_none() && query.name.is_none() {
            return Err(Error::BadQuery(
                "give at least one of tel, mailto and name".to_owned(),
            ));
        }
        self.ensure_ready()?;
        let conn = self.readers.get()?;
        let limit = if query.limit == 0 {
            -1
        } else {
            i64::from(query.limit)
        };
        conn.prepare_cached(&self.sql.query)
            .and_then(|mut stmt| {
                stmt.query_map(params![query.tel, query.mailto, query.name, limit], |row| {
                    row.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.fail("searching vCons by party", e))
    }

    fn status_report(&self) -> Result<serde_json::Value, Error> {
        let conn = self.readers.get()?;
        let pragma = |name: &str| -> Result<String, Error> {
            conn.pragma_query_value(None, name, |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Integer(n) => n.to_string(),
                    other => String::from_utf8_lossy(&bytes_of(other)).into_owned(),
                })
            })
            .map_err(|e| self.fail(format!("reading PRAGMA {name}"), e))
        };
        let int = |name: &str| -> Result<i64, Error> {
            conn.pragma_query_value(None, name, |row| row.get(0))
                .map_err(|e| self.fail(format!("reading PRAGMA {name}"), e))
        };
        let version = schema::current_version(&conn, &self.table)
            .map_err(|e| self.fail("reading the schema version", e))?;
        let latest = schema::latest_version();
        let rows = if version >= latest {
            serde_json::Value::from(self.count_rows(&conn)?)
        } else {
            serde_json::Value::Null
        };
        Ok(serde_json::json!({
            "path": self.path.display().to_string(),
            "table": self.table.as_str(),
            "rows": rows,
            "provisioned": version >= latest,
            "schema_version": version,
            "latest_schema_version": latest,
            "sqlite_version": rusqlite::version(),
            "journal_mode": pragma("journal_mode")?,
            "synchronous": self.options.synchronous.to_string(),
            "page_count": int("page_count")?,
            "page_size": int("page_size")?,
            "freelist_count": int("freelist_count")?,
            "read_connections": self.options.pool_size,
            "busy_timeout_ms": self.options.busy_timeout_ms,
        }))
    }

    fn provision_table(&self, recreate: bool) -> Result<serde_json::Value, Error> {
        let report = {
            let mut conn = self.writer.get()?;
            schema::provision(&mut conn, &self.table, recreate)
                .map_err(|err| provision_error(err, &self.table, &self.path))?
        };
        self.ready.store(true, Ordering::Release);
        tracing::info!(
            table = %self.table,
            recreated = report.recreated,
            applied = ?report.applied,
            "provisioned"
        );
        Ok(serde_json::json!({
            "path": self.path.display().to_string(),
            "table": self.table.as_str(),
            "migrations_table": self.table.with_suffix("schema_migrations"),
            "recreated": report.recreated,
            "applied": report.applied,
            "version": report.version,
            "latest_version": schema::latest_version(),
        }))
    }

    fn clear_table(&self) -> Result<u64, Error> {
        self.ensure_ready()?;
        let conn = self.writer.get()?;
        let removed = conn
            .prepare_cached(&self.sql.clear)
            .and_then(|mut stmt| stmt.execute([]))
            .map_err(|e| self.fail("clearing the table", e))?;
        Ok(removed as u64)
    }
}

/// One connection to `path`, set up for this storage. `create` lets SQLite create the file.
/// Not a URI (a `path` is always a file name) and without SQLite's own mutex: each connection
/// is used by one thread at a time, which the pool guarantees.
fn open_connection(path: &Path, options: &Options, create: bool) -> rusqlite::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    // Through `sqlite-wal-vfs`: a batch's commit reaches the WAL in one write, not two per page.
    let conn = sqlite_wal_vfs::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout())?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

fn provision_error(err: ProvisionError, table: &TableName, path: &Path) -> Error {
    match err {
        ProvisionError::Sql(source) => {
            Error::sql(format!("provisioning table {table}"), path, source)
        }
        ProvisionError::ForeignTable => Error::ForeignTable {
            table: table.to_string(),
            migrations: table.with_suffix("schema_migrations"),
            path: path.to_owned(),
        },
    }
}

impl Storage for SqliteStorage {
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> {
        Ok(self.save_one(record)?)
    }

    fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.get_one(uuid)?)
    }

    fn delete(&self, uuid: &str) -> Result<bool, StorageError> {
        Ok(self.delete_one(uuid)?)
    }

    fn exists(&self, uuid: &str) -> Result<bool, StorageError> {
        Ok(self.exists_one(uuid)?)
    }

    fn save_many(&self, records: &[VconRecord<'_>]) -> BatchResult {
        Ok(self
            .save_batch(records)?
            .into_iter()
            .map(|r| r.map_err(StorageError::from))
            .collect())
    }

    fn get_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        Ok(self.get_batch(uuids)?)
    }

    fn delete_many(&self, uuids: &[&str]) -> Result<Vec<bool>, StorageError> {
        Ok(self.delete_batch(uuids)?)
    }

    fn list(&self, request: &ListRequest) -> Result<ListPage, StorageError> {
        Ok(self.list_page(request)?)
    }

    fn query(&self, query: &PartyQuery) -> Result<Vec<String>, StorageError> {
        Ok(self.query_parties(query)?)
    }

    fn count(&self) -> Result<u64, StorageError> {
        self.ensure_ready()?;
        let conn = self.readers.get()?;
        Ok(self.count_rows(&conn)?)
    }

    fn status(&self) -> Result<serde_json::Value, StorageError> {
        Ok(self.status_report()?)
    }

    fn provision(&self, request: &ProvisionRequest) -> Result<serde_json::Value, StorageError> {
        Ok(self.provision_table(request.recreate)?)
    }

    fn clear(&self) -> Result<u64, StorageError> {
        Ok(self.clear_table()?)
    }

    /// Lets SQLite refresh its planner statistics and fold the WAL back into the file, so the
    /// file is compact and self-contained after a clean shutdown. Failures are logged only:
    /// nothing is lost by skipping either step.
    fn close(&self) -> Result<(), StorageError> {
        let conn = match self.writer.get() {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!("not checkpointing at close: {err}");
                return Ok(());
            }
        };
        if let Err(err) = conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(path = %self.path.display(), "checkpoint at close failed: {err}");
        }
        Ok(())
    }
}

impl StoragePlugin for SqliteStorage {
    type Options = Options;
    const NAME: &'static str = "sqlite";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "one row per vCon in a SQLite file (WAL), the table of the Python server's postgres module";
    const CAPABILITIES: Capabilities = Capabilities::GET
        .union(Capabilities::DELETE)
        .union(Capabilities::EXISTS)
        .union(Capabilities::BATCH)
        .union(Capabilities::LIST)
        .union(Capabilities::QUERY)
        .union(Capabilities::COUNT)
        .union(Capabilities::STATUS)
        .union(Capabilities::PROVISION)
        .union(Capabilities::CLEAR);

    fn option_defaults() -> serde_json::Value {
        let defaults = Options::default();
        serde_json::json!({
            "path": defaults.path.display().to_string(),
            "table_name": defaults.table_name,
            "busy_timeout_ms": defaults.busy_timeout_ms,
            "pool_size": defaults.pool_size,
            "synchronous": defaults.synchronous.to_string(),
            "create": defaults.create,
        })
    }

    fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> {
        Ok(Self::open_with(options)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_utc_micros() {
        let record = VconRecord::for_test("u", b"{}");
        assert_eq!(
            created_at_text(&record).unwrap(),
            "2023-11-14T22:13:20.000000Z"
        );
        let mut early = record;
        early.created_at_us = 1;
        assert_eq!(
            created_at_text(&early).unwrap(),
            "1970-01-01T00:00:00.000001Z"
        );
        let mut far = record;
        far.created_at_us = 300_000_000_000_000_000;
        assert!(created_at_text(&far)
            .unwrap_err()
            .to_string()
            .contains("9999"));
        assert_eq!(now_text().len(), "2023-11-14T22:13:20.000000Z".len());
    }

    #[test]
    fn the_spec_version_is_read_without_the_rest() {
        assert_eq!(
            spec_version(br#"{"uuid":"u","vcon":"0.0.1","dialog":[{"x":[1,{}]}]}"#).as_deref(),
            Some("0.0.1")
        );
        assert_eq!(
            spec_version(br#"{"parties":[{"vcon":"no"}],"vcon":"0.4\u002e0"}"#).as_deref(),
            Some("0.4.0")
        );
        assert_eq!(spec_version(br#"{"uuid":"u"}"#), None);
        assert_eq!(spec_version(br#"{"vcon":4}"#), None);
        assert_eq!(spec_version(br#"{"vcon":null}"#), None);
        assert_eq!(spec_version(b"not json"), None);
    }

    #[test]
    fn non_utf8_documents_are_refused_before_sql() {
        let record = VconRecord::for_test("u", b"{\"x\":\"\xff\"}");
        let err = StorageError::from(Row::new(&record).err().unwrap());
        assert_eq!(err.kind(), plugin_sdk::ErrorKind::InvalidInput);
        assert!(err.message().contains("UTF-8"), "{err}");
    }
}
