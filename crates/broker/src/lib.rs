//! The broker: the hot store (uuid → vCon, with an optional time to live), the named lists
//! (ingress, egress, dead letters) that chains move uuids through, and the listing and search
//! index the HTTP API answers from.
//!
//! One trait, so the chain code and the API do not care whether the broker is the embedded
//! SQLite file ([`SqliteBroker`]: one machine, no services) or Redis ([`RedisBroker`]: many hosts
//! sharing one queue, with the Python server's key layout).
//!
//! Delivery is at-least-once: [`Broker::claim`] marks list items as taken by a worker without
//! removing them, and only [`Broker::finish`] removes them, atomically with pushing the uuids on
//! to egress and dead-letter lists. A worker that dies leaves its claims behind, and
//! [`Broker::requeue_abandoned`] puts them back. Saves are idempotent, so a vCon processed twice
//! after a crash is stored once.
//!
//! The trait is synchronous: the embedded broker is a local file whose operations take
//! microseconds, Redis answers in tens of microseconds on loopback, and chain workers are
//! threads, not async tasks. The HTTP API calls it from `block_in_place`, except for `POST
//! /vcon`, whose group commit ([`Broker::ingest_batches`]) calls the embedded broker inline
//! ([`Broker::is_local`]).

mod background;
mod checkpoint;
mod documents;
mod empty_lists;
mod hot;
mod redis;
mod sqlite;

pub use background::{BackgroundWork, Running};
pub use documents::StagedDocument;
pub use hot::{now_us, search_keys, HotVcon};
pub use redis::RedisBroker;
pub use sqlite::SqliteBroker;

use std::time::Duration;

/// Which list item an operation means: a row of the embedded broker, or a uuid in a Redis list.
/// Opaque, so each broker can name its items the way its store does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemId(pub(crate) ItemKey);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ItemKey {
    /// A `list_items` row of the embedded broker.
    Row(i64),
    /// One occurrence of `uuid` in the Redis list `key`.
    InList { key: String, uuid: String },
}

/// One claimed list item: the row the worker must finish, and the uuid it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedItem {
    /// The item in the broker (what [`Broker::finish`] removes).
    pub id: ItemId,
    /// The uuid it carries.
    pub uuid: String,
}

/// A batch of items claimed from one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The list they came from (the chain's ingress list).
    pub list: String,
    /// The items, oldest first.
    pub items: Vec<ClaimedItem>,
}

/// What finishing a batch pushes, atomically with removing its items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finish {
    /// `(list, uuid)` pairs to append (egress lists, tag routes).
    pub pushes: Vec<(String, String)>,
    /// Dead letters to append.
    pub dead_letters: Vec<DeadLetter>,
}

/// A uuid sent to a dead-letter list, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The list: `DLQ:{ingress_list}` or `DLQ:storage:{storage}`.
    pub list: String,
    /// The vCon.
    pub uuid: String,
    /// A JSON note: the reason, the chain, the egress lists still owed.
    pub note: String,
}

/// An item of a list, for inspection and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The item (what [`Broker::finish`] and [`Broker::remove_entry`] take).
    pub id: ItemId,
    /// The uuid.
    pub uuid: String,
    /// The note (dead letters carry their reason), if any.
    pub note: Option<String>,
    /// When it was added, microseconds since the epoch.
    pub added_at_us: i64,
}

/// Part of a group commit ([`Broker::ingest_batches`]): vCons queued on the same lists with the
/// same time to live, as one [`Broker::ingest`] would take them.
#[derive(Debug, Clone, Copy)]
pub struct IngestBatch<'a> {
    /// The vCons.
    pub vcons: &'a [HotVcon],
    /// The lists each uuid is appended to.
    pub lists: &'a [String],
    /// Their time to live in the hot store.
    pub ttl: Option<Duration>,
}

/// The name of the dead-letter list for an ingress list (the Python server's name).
pub fn ingress_dlq(ingress_list: &str) -> String {
    format!("DLQ:{ingress_list}")
}

/// The name of the dead-letter list of a storage's failed writes (the Python server's newer
/// releases use the same).
pub fn storage_dlq(storage: &str) -> String {
    format!("DLQ:storage:{storage}")
}

/// A page of the listing: uuids by `created_at`, newest first (`GET /vcon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingPage {
    /// Only vCons created at or after this (microseconds since the epoch).
    pub since_us: Option<i64>,
    /// Only vCons created at or before this.
    pub until_us: Option<i64>,
    /// How many to skip (`(page - 1) * size`).
    pub offset: u64,
    /// How many to answer at most.
    pub limit: u64,
}

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Redis refused or could not be reached.
    #[error("Redis broker {url}: {source}")]
    Redis {
        /// The server, without credentials.
        url: String,
        /// The client's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// No connection to Redis could be had from the pool.
    #[error("Redis broker {url}: no connection: {source} (is the server up? the hosts retry with back-off)")]
    RedisPool {
        /// The server, without credentials.
        url: String,
        /// The pool's error.
        #[source]
        source: r2d2::Error,
    },
    /// Redis answered something this broker did not write (another program shares the keys).
    #[error("Redis broker {url}: key {key}: {problem}")]
    RedisData {
        /// The server, without credentials.
        url: String,
        /// The key.
        key: String,
        /// What was wrong with it.
        problem: String,
    },
    /// The embedded broker's database failed.
    #[error("broker database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The broker's file could not be prepared.
    #[error("broker file {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A large vCon could not be written to the embedded broker's documents directory (see
    /// [`SqliteBroker`]); nothing of its ingest was kept.
    #[error("writing a vCon of {bytes} bytes to the broker's documents directory {dir}: {source} (is the disk full, or the directory not writable by this user?)")]
    Document {
        /// The directory (`<broker file>-documents`).
        dir: String,
        /// The document's length.
        bytes: usize,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another `vcon-host run` holds this broker.
    #[error("another vcon-host run is already working on broker {path} (lock file {lock}): stop it first, or give this one another `host.broker`")]
    InUse {
        /// The broker file.
        path: String,
        /// The lock file.
        lock: String,
    },
}

/// The broker operations the chains, the CLI and the API use.
pub trait Broker: Send + Sync + std::fmt::Debug {
    /// Stores vCons in the hot store and appends each uuid to every list, in one transaction:
    /// nothing is half-ingested.
    fn ingest(
        &self,
        vcons: &[HotVcon],
        lists: &[String],
        ttl: Option<Duration>,
    ) -> Result<(), BrokerError>;

    /// Several ingests at once, in order: the API's group commit of concurrent `POST /vcon`s.
    /// The embedded broker writes them in one transaction (one commit instead of one per
    /// request); the default makes one [`Broker::ingest`] call per batch.
    fn ingest_batches(&self, batches: &[IngestBatch<'_>]) -> Result<(), BrokerError> {
        batches
            .iter()
            .try_for_each(|b| self.ingest(b.vcons, b.lists, b.ttl))
    }

    /// Whether every call is answered on this machine without network I/O, in microseconds
    /// (the embedded broker): an async caller may then make short calls inline rather than
    /// pay a hand-off to another thread, which can cost more than the call.
    fn is_local(&self) -> bool {
        false
    }

    /// Set while this broker's own background thread works (the embedded broker's checkpoint
    /// rounds), so threads that poll for work instead of sleeping can sleep meanwhile and leave
    /// it a core ([`BackgroundWork`]). Never set by default: a broker with no such thread.
    fn background_work(&self) -> BackgroundWork {
        BackgroundWork::default()
    }

    /// Writes a document ahead of its ingest where this broker keeps large documents apart
    /// (the embedded broker's files), so the write can overlap the document's validation; put
    /// it in [`HotVcon::staged`] and ingest as usual. `None` where nothing is gained: a broker
    /// that keeps every document inline (Redis), or a document small enough to stay in its
    /// row. Dropped without being ingested, it is given up.
    fn stage_document(&self, json: &[u8]) -> Result<Option<StagedDocument>, BrokerError> {
        let _ = json;
        Ok(None)
    }

    /// Replaces a vCon in the hot store (after links changed it), keeping its time to live.
    fn put_vcon(&self, vcon: &HotVcon) -> Result<(), BrokerError>;

    /// Reads vCons from the hot store; `None` for each one absent or expired (a vCon still
    /// waiting in a list other than a dead-letter list does not expire).
    fn get_vcons(&self, uuids: &[&str]) -> Result<Vec<Option<HotVcon>>, BrokerError>;

    /// Removes a vCon from the hot store; whether it was there. The listing and search entries
    /// stay (the vCon lives on in the storages); [`Broker::forget`] removes those too.
    fn delete_vcon(&self, uuid: &str) -> Result<bool, BrokerError>;

    /// Removes a vCon from the hot store, the listing and the search index (`DELETE
    /// /vcon/{uuid}`); whether the hot copy was there.
    fn forget(&self, uuid: &str) -> Result<bool, BrokerError>;

    /// One page of the uuids ever ingested and not forgotten, newest `created_at` first.
    fn list_uuids(&self, page: &ListingPage) -> Result<Vec<String>, BrokerError>;

    /// The uuids whose parties match every one of `keys` (`tel:{tel}`, `mailto:{addr}`,
    /// `name:{name}`, exact strings as [`search_keys`] makes them). A key that matches nothing
    /// empties the answer (the Python server ignores it instead).
    fn search(&self, keys: &[String]) -> Result<Vec<String>, BrokerError>;

    /// Sets (or with `None` removes) a vCon's time to live; whether it was there.
    fn expire_vcon(&self, uuid: &str, ttl: Option<Duration>) -> Result<bool, BrokerError>;

    /// Appends uuids to a list.
    fn push(&self, list: &str, uuids: &[&str]) -> Result<(), BrokerError>;

    /// Claims up to `max` items from the first of `lists` (in priority order) that has any.
    fn claim(
        &self,
        lists: &[String],
        owner: &str,
        max: usize,
    ) -> Result<Option<Claim>, BrokerError>;

    /// Removes finished items and appends `finish`'s pushes and dead letters, atomically.
    fn finish(&self, items: &[ItemId], finish: &Finish) -> Result<(), BrokerError>;

    /// Puts back, at the front of their lists, the items claimed by workers that are gone,
    /// answering how many. Safe to call any time from a running host: the embedded broker
    /// releases only claims of earlier runs (its run lock says no other host is alive), the
    /// Redis broker only those of hosts whose heartbeat has expired. A client handle (not
    /// opened for `run`) releases nothing.
    fn requeue_abandoned(&self) -> Result<u64, BrokerError>;

    /// Removes and answers up to `count` uuids from the end of a list (Redis `RPOP`, as the
    /// Python server's egress endpoint does).
    fn pop_back(&self, list: &str, count: usize) -> Result<Vec<String>, BrokerError>;

    /// How many items a list holds (claimed ones included).
    fn len(&self, list: &str) -> Result<u64, BrokerError>;

    /// The first `limit` items of a list, oldest first.
    fn entries(&self, list: &str, limit: usize) -> Result<Vec<ListEntry>, BrokerError>;

    /// Removes one item; whether it was there.
    fn remove_entry(&self, id: &ItemId) -> Result<bool, BrokerError>;

    /// Every non-empty list and its length.
    fn lists(&self) -> Result<Vec<(String, u64)>, BrokerError>;

    /// Drops expired vCons from the hot store, answering how many. A vCon that still waits in
    /// (or is claimed from) a list other than a dead-letter list is kept, so a backlog that
    /// outlives the time to live is not lost.
    fn purge_expired(&self) -> Result<u64, BrokerError>;
}
