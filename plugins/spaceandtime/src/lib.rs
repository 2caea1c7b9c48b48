//! The `spaceandtime` storage plugin: vCons in a Space and Time table, over the service's
//! network API, as the Python vCon Server's `storage.spaceandtime` intended.
//!
//! # How it talks to Space and Time
//!
//! - **Login**: `POST {auth_url}/auth/apikey` with header `apikey: KEY` answers an access token
//!   and its expiry (epoch milliseconds). The token is cached and renewed before it expires
//!   (a minute early, or at three quarters of a short lifetime), and once more if a statement
//!   is refused with 401 (the `client` module).
//! - **SQL**: `POST {api_url}/v1/sql` with `Authorization: Bearer TOKEN`, header `originApp`,
//!   and `{"sqlText", "biscuits": [BISCUIT], "validate": "false"}`. Reads are sent with the read
//!   biscuit (`dql_select`), writes with the write biscuit (`dml_insert`, `dml_update`,
//!   `dml_delete`); `provision` with a DDL biscuit minted from `biscuit_private_key`.
//! - **No parameters**: the API binds none, so every value is rendered by one function
//!   (`sql::sql_literal`: single quotes doubled, NUL refused, backslashes ordinary), every uuid
//!   is validated as 8-4-4-4-12 hex first, and `table_name` is validated as `SCHEMA.TABLE`
//!   identifiers. A subject of `'; DROP TABLE x; --` is stored as text.
//!
//! # The table
//!
//! `UUID, VCON, CREATED_AT, SUBJECT, VCON_JSON`, all VARCHAR, `PRIMARY KEY (UUID)`: the
//! document verbatim in `VCON_JSON`, its `vcon` version in `VCON`, `created_at` as RFC 3339 in
//! the document's own offset. A VARCHAR holds at most 65,536 characters, so a vCon whose JSON
//! is longer (a recorded call with its transcript, such as the 270 KB reference document) is
//! refused with `InvalidInput` naming its size and the limit: store those in another storage
//! of the same chain. Space and Time has no upsert: `save` updates, then inserts when no row
//! was updated (the `storage` module).
//!
//! # What was verified, and against what
//!
//! This machine cannot reach Space and Time. Everything here was verified **only against the
//! local emulator** (`crates/sxt-emulator`: the two endpoints, expiring tokens, biscuits
//! verified with `biscuit-auth` against the table's public key, SQL on SQLite), which is built
//! from the Space and Time SDK's source and documentation. Not verified against the real
//! service: the status and text of its errors (duplicate key, missing table, refused biscuit),
//! the answer of DML statements (`[{"UPDATED": n}]` is inferred from the SDK), that backslashes
//! are ordinary in its string literals, multi-row `INSERT`, and its request-size limits.
//!
//! # Differences from the Python module
//!
//! - Errors are reported with a kind the host acts on; the Python module logs and swallows
//!   every error, so its saves never fail and sometimes never write.
//! - Reads use the read biscuit (the Python module sends the write biscuit, from a misspelt
//!   environment variable, which is still read as a fall-back).
//! - `get` renders the uuid as a validated literal (the Python module formats it into the SQL).
//! - `table_name` must be `SCHEMA.TABLE` (Space and Time's tables always have a schema).

mod biscuits;
mod client;
mod error;
mod options;
mod sql;
mod storage;

pub use options::{Options, DEFAULT_API_URL, DEFAULT_AUTH_URL, DEFAULT_ORIGIN_APP};
pub use sql::{TableName, VARCHAR_LIMIT};
pub use storage::SxtStorage;

plugin_sdk::export_storage_plugin!(SxtStorage);
