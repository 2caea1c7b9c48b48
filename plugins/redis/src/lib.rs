//! The `redis` storage plugin: each vCon a JSON string in Redis under `{prefix}:{uuid}`, with a
//! time to live: the keys and values of the Python vCon Server's `storage.redis_storage`, so
//! both servers read what the other wrote.
//!
//! `module: redis` loads it; the Python name, `module: storage.redis_storage`, is meant to map
//! to it as `storage.s3` maps to `object-store`. The operator's page is `README.md` beside this
//! crate's `Cargo.toml`.
//!
//! # Layout
//!
//! | key | type | value | TTL |
//! |---|---|---|---|
//! | `{prefix}:{uuid}` (`vcon_storage:…` by default) | string | the vCon's JSON, exactly the bytes the host received | `expires` seconds (7 days by default; none with `expires: 0`) |
//!
//! Nothing else is written: no index, no set of uuids. A save is `SET key json EX expires`, an
//! upsert that restarts the time to live, as in Python.
//!
//! # Better than the Python module
//!
//! - `redis_url` is honoured (Python ignores it and always uses the server-wide `REDIS_URL`;
//!   its default, `redis://:localhost:6379`, is malformed). Without the option, `REDIS_URL` is
//!   used, else `redis://127.0.0.1:6379`; the Python default itself means "not given".
//! - Failures are errors with a kind, never "not found": Python's `get` answers `None` on any
//!   error, so an outage looks like a missing vCon. Unreachable, loading, full or read-only
//!   Redis is `Unavailable` (retried by the host, each message saying what to check).
//! - Pooled connections, with time-outs, reconnecting by themselves after a restart (Python
//!   shares one client per process, without time-outs).
//! - `delete`, `exists`, batches (a `save_many` is one pipelined round trip), `list` and
//!   `count` (by `SCAN`, never `KEYS`), `status` and `clear`.
//! - The uuid is checked before it becomes part of a key, and the password never appears in a
//!   log line or a message (the server is shown as `redis://user:***@host:port/db`).
//!
//! # Costs
//!
//! `save`, `get`, `delete`, `exists` and every batch are one round trip (a batch over 64 MB
//! is sent in parts of at most that size). `list` (each page), `count` and `clear` walk the whole
//! database with `SCAN` (one round trip per thousand keys of the *database*, not of the
//! prefix): Redis has no ordered index of these keys, and keeping one would change the Python
//! layout and outlive the keys' time to live. They are for operators, not for every vCon.

mod error;
mod keys;
mod options;
mod pool;
mod storage;

pub use options::{
    Options, DEFAULT_COMMAND_TIMEOUT_S, DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_EXPIRES_S,
    DEFAULT_POOL_SIZE, DEFAULT_PREFIX, DEFAULT_URL, MAX_EXPIRES_S, MAX_POOL_SIZE, MAX_TIMEOUT_S,
    PYTHON_DEFAULT_URL, URL_ENV,
};
pub use pool::CLIENT_NAME;
pub use storage::{
    RedisStorage, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_ROUND_TRIP_BYTES, SCAN_COUNT,
};

plugin_sdk::export_storage_plugin!(RedisStorage);
