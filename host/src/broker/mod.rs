//! The broker: the hot store (uuid → vCon, with an optional time to live) and the named lists
//! (ingress, egress, dead letters) that chains move uuids through.
//!
//! One trait, so the chain code does not care whether the broker is the embedded SQLite file
//! (one machine, no services) or, later, Redis (many hosts sharing one queue).
//!
//! Delivery is at-least-once: [`Broker::claim`] marks list items as taken by a worker without
//! removing them, and only [`Broker::finish`] removes them, in the same transaction that pushes
//! the uuids on to egress and dead-letter lists. A worker that dies leaves its claims behind,
//! and [`Broker::requeue_unfinished`] puts them back on start. Saves are idempotent, so a vCon
//! processed twice after a crash is stored once.
//!
//! The trait is synchronous: the embedded broker is a local file whose operations take
//! microseconds, and chain workers are threads, not async tasks.

mod sqlite;

pub use sqlite::SqliteBroker;

use std::sync::Arc;
use std::time::Duration;

/// A vCon in the hot store, with the index fields extracted at ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotVcon {
    /// The canonical uuid.
    pub uuid: String,
    /// The document, as received (or as the links last changed it).
    pub json: Arc<[u8]>,
    /// `created_at` (or when it was first stored), microseconds since the epoch.
    pub created_at_us: i64,
    /// The offset `created_at` was written in, in seconds.
    pub created_at_offset_s: i32,
    /// `updated_at` (or `created_at`), microseconds since the epoch.
    pub updated_at_us: i64,
    /// The subject, if any.
    pub subject: Option<String>,
}

/// One claimed list item: the row the worker must finish, and the uuid it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedItem {
    /// The item's id in the broker (what [`Broker::finish`] removes).
    pub id: i64,
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
    /// The item's id.
    pub id: i64,
    /// The uuid.
    pub uuid: String,
    /// The note (dead letters carry their reason), if any.
    pub note: Option<String>,
    /// When it was added, microseconds since the epoch.
    pub added_at_us: i64,
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

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
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

    /// Replaces a vCon in the hot store (after links changed it), keeping its time to live.
    fn put_vcon(&self, vcon: &HotVcon) -> Result<(), BrokerError>;

    /// Reads vCons from the hot store; `None` for each one absent or expired (a vCon still
    /// waiting in a list other than a dead-letter list does not expire).
    fn get_vcons(&self, uuids: &[&str]) -> Result<Vec<Option<HotVcon>>, BrokerError>;

    /// Removes a vCon from the hot store; whether it was there.
    fn delete_vcon(&self, uuid: &str) -> Result<bool, BrokerError>;

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

    /// Removes finished items and appends `finish`'s pushes and dead letters, in one transaction.
    fn finish(&self, item_ids: &[i64], finish: &Finish) -> Result<(), BrokerError>;

    /// Releases every claim (of a previous run that died), answering how many.
    fn requeue_unfinished(&self) -> Result<u64, BrokerError>;

    /// Removes and answers up to `count` uuids from the end of a list (Redis `RPOP`, as the
    /// Python server's egress endpoint does).
    fn pop_back(&self, list: &str, count: usize) -> Result<Vec<String>, BrokerError>;

    /// How many items a list holds (claimed ones included).
    fn len(&self, list: &str) -> Result<u64, BrokerError>;

    /// The first `limit` items of a list, oldest first.
    fn entries(&self, list: &str, limit: usize) -> Result<Vec<ListEntry>, BrokerError>;

    /// Removes one item by id; whether it was there.
    fn remove_entry(&self, id: i64) -> Result<bool, BrokerError>;

    /// Every non-empty list and its length.
    fn lists(&self) -> Result<Vec<(String, u64)>, BrokerError>;

    /// Drops expired vCons from the hot store, answering how many. A vCon that still waits in
    /// (or is claimed from) a list other than a dead-letter list is kept, so a backlog that
    /// outlives the time to live is not lost.
    fn purge_expired(&self) -> Result<u64, BrokerError>;
}
