//! The `sqlite` storage plugin: one row per vCon in a SQLite file, in the table of the Python
//! vCon Server's `storage.postgres`, so the default configuration keeps every vCon in a single
//! queryable file with no database server.
//!
//! # Schema
//!
//! ```sql
//! CREATE TABLE "vcons" (                 -- option table_name
//!     id         TEXT PRIMARY KEY NOT NULL, -- the uuid
//!     vcon       TEXT,                   -- the spec version ("0.0.1"), as Python stores it
//!     uuid       TEXT NOT NULL,
//!     created_at TEXT NOT NULL,          -- 2024-01-02T03:04:05.123456Z (UTC, microseconds)
//!     updated_at TEXT NOT NULL,          -- when this row was last written
//!     subject    TEXT,
//!     vcon_json  TEXT NOT NULL           -- the document, byte for byte as received
//! );
//! CREATE INDEX "vcons_uuid_idx" ON "vcons" (uuid);
//! CREATE INDEX "vcons_created_at_idx" ON "vcons" (created_at, id);
//! -- and "vcons_schema_migrations" (version, applied_at, description)
//! ```
//!
//! Timestamps are text rather than integer microseconds: fixed-width RFC 3339 in UTC sorts as
//! time does, and `sqlite3` shows (and SQLite's date functions read) it as it is. Unlike the
//! Python module's `TIMESTAMP` column, no offset is silently dropped: everything is UTC.
//!
//! # Why WAL
//!
//! In the default rollback-journal mode a writer blocks every reader. In WAL mode readers read a
//! snapshot while one writer appends, so `get` and `list` never wait for a save, and a commit
//! is one sequential append (with `synchronous: normal`, no fsync per commit). The storage keeps
//! one write connection and `pool_size` read connections (module `pool`).
//!
//! # Why migrations, not DDL per save
//!
//! The Python module runs `CREATE TABLE IF NOT EXISTS` before every insert: a schema lookup per
//! vCon, and no way to ever change the table. Here the schema has versions, recorded per table
//! in `{table}_schema_migrations`; `provision` applies the missing ones in one transaction
//! (and is a no-op when there are none), and with `create: true` (the default) that happens once
//! at open. A save is one prepared, cached `INSERT ... ON CONFLICT (id) DO UPDATE`.
//!
//! # Safety of SQL
//!
//! Every value is a bound parameter. The one identifier, `table_name`, is checked against
//! `^[A-Za-z_][A-Za-z0-9_]{0,62}$` at open and double-quoted ([`TableName`]); anything else is
//! refused with the rule spelled out.

mod cursor;
mod error;
mod options;
mod pool;
mod schema;
mod storage;

pub use options::{Options, Synchronous, TableName, DEFAULT_PATH, DEFAULT_TABLE, MAX_POOL_SIZE};
pub use storage::{SqliteStorage, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

plugin_sdk::export_storage_plugin!(SqliteStorage);
