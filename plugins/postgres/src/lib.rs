//! The `postgres` storage plugin: one row per vCon in a PostgreSQL table, the table of the Python
//! vCon Server's `storage.postgres`, so operators keep their database and their data.
//!
//! # Schema
//!
//! ```sql
//! CREATE TABLE "vcons" (                        -- option table_name
//!     id         uuid PRIMARY KEY,
//!     vcon       text,                          -- the spec version ("0.0.1"), as Python stores it
//!     uuid       uuid NOT NULL,
//!     created_at timestamptz NOT NULL,          -- the document's created_at, an instant
//!     updated_at timestamptz NOT NULL DEFAULT now(), -- when this row was last written
//!     subject    text,
//!     vcon_json  jsonb NOT NULL                 -- the document
//! );
//! CREATE INDEX "vcons_uuid_idx" ON "vcons" (uuid);
//! CREATE INDEX "vcons_created_at_idx" ON "vcons" (created_at, id);
//! -- and vcon_host_schema_migrations (table_name, version, description, adopted, applied_at)
//! ```
//!
//! `vcon_json` is `jsonb`, as in the Python table: queryable with PostgreSQL's JSON operators,
//! at the price of key order and whitespace (a `get` answers the same JSON value, not the same
//! bytes). A `save` is one prepared `INSERT ... ON CONFLICT (id) DO UPDATE`; a `save_many` is
//! one `INSERT ... SELECT FROM UNNEST($1::uuid[], ...)` per 32 MB of documents, every value a
//! bound array parameter.
//!
//! # Why migrations, not DDL per save
//!
//! The Python module runs `CREATE TABLE IF NOT EXISTS` before every insert: a catalog lookup per
//! vCon, and no way to ever change the table. Here the schema has versions, recorded in
//! `vcon_host_schema_migrations`; `provision` applies the missing ones in one transaction under
//! an advisory lock (a no-op when there are none; `recreate` drops and starts again), and with
//! `create: true` (the default) that happens once at open.
//!
//! # Python compatibility
//!
//! A table created by the Python module (the same columns with `timestamp` types) is used as it
//! is: its column types are read at open and the statements written for them (naive UTC values
//! in `timestamp` columns, where Python wrote local time with the offset dropped). `provision`
//! records it as adopted without altering it. Its rows read back unchanged.
//!
//! # Safety of SQL
//!
//! Every value is a bound parameter. The one identifier, `table_name`, is checked against
//! `^[A-Za-z_][A-Za-z0-9_]{0,62}$` at open and double-quoted ([`TableName`]).
//!
//! # Failures
//!
//! An unreachable or restarting server, a saturated pool and a statement timeout are
//! `Unavailable` (the host retries; every write is an upsert, so a retry is safe); refused
//! credentials `Unauthorized`; data PostgreSQL cannot hold `InvalidInput` (in a batch, only for
//! the records concerned); a missing database or table `NotFound`. Dead connections are
//! replaced by the pool without a query per call.

mod error;
mod options;
mod schema;
mod storage;
mod tls;
mod values;

pub use options::{
    Options, SslMode, TableName, DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_DATABASE, DEFAULT_HOST,
    DEFAULT_POOL_SIZE, DEFAULT_PORT, DEFAULT_STATEMENT_TIMEOUT_MS, DEFAULT_TABLE, DEFAULT_USER,
    MAX_POOL_SIZE,
};
pub use schema::MIGRATIONS_TABLE;
pub use storage::{
    PostgresStorage, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_STATEMENT_BYTES, MAX_STATEMENT_ROWS,
};

plugin_sdk::export_storage_plugin!(PostgresStorage);
