//! The traits a plugin implements: [`Storage`] (operations) and [`StoragePlugin`] (identity and
//! opening).

use serde::{Deserialize, Serialize};

use crate::{Capabilities, StorageError, VconRecord};

/// The answer to a batch write: `Err` when the whole batch failed for one reason, otherwise one
/// result per record, in order, so the host dead-letters exactly the records that failed.
pub type BatchResult = Result<Vec<Result<(), StorageError>>, StorageError>;

/// The operations of one opened storage instance.
///
/// `save` is required. Every other method answers [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
/// (crate::ErrorKind::Unsupported) unless implemented, and must then be declared in
/// [`StoragePlugin::CAPABILITIES`]: the conformance suite checks both directions. The host calls
/// one instance from many threads at once, hence `Send + Sync`; use a pool or a mutex inside.
///
/// Semantics every backend shares (and the conformance suite checks):
/// - `save` replaces a stored copy with the same uuid (it is an upsert, so retries are safe);
/// - `get` of a uuid never saved answers `Ok(None)`: not found is not an error;
/// - `delete` answers whether something was removed;
/// - batch answers are in request order, one per item.
pub trait Storage: Send + Sync + 'static {
    /// Stores a vCon, replacing any stored copy with the same uuid.
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError>;

    /// Reads a vCon's JSON back, or `None` when it is not stored. Declare `GET`.
    fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let _ = uuid;
        Err(StorageError::unsupported("get"))
    }

    /// Removes a vCon; `false` when it was not stored. Declare `DELETE`.
    fn delete(&self, uuid: &str) -> Result<bool, StorageError> {
        let _ = uuid;
        Err(StorageError::unsupported("delete"))
    }

    /// Whether a vCon is stored. Declare `EXISTS`.
    fn exists(&self, uuid: &str) -> Result<bool, StorageError> {
        let _ = uuid;
        Err(StorageError::unsupported("exists"))
    }

    /// Stores a batch in as few round trips as the backend allows. Declare `BATCH` (which
    /// covers the three batch methods). Without it, the host saves one at a time.
    fn save_many(&self, records: &[VconRecord<'_>]) -> BatchResult {
        let _ = records;
        Err(StorageError::unsupported("save_many"))
    }

    /// Reads a batch: one answer per uuid, in order. Declare `BATCH`.
    fn get_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let _ = uuids;
        Err(StorageError::unsupported("get_many"))
    }

    /// Removes a batch: one answer per uuid, in order. Declare `BATCH`.
    fn delete_many(&self, uuids: &[&str]) -> Result<Vec<bool>, StorageError> {
        let _ = uuids;
        Err(StorageError::unsupported("delete_many"))
    }

    /// Pages through stored uuids. Declare `LIST`.
    fn list(&self, request: &ListRequest) -> Result<ListPage, StorageError> {
        let _ = request;
        Err(StorageError::unsupported("list"))
    }

    /// Finds vCons by party identifiers. Declare `QUERY`.
    fn query(&self, query: &PartyQuery) -> Result<Vec<String>, StorageError> {
        let _ = query;
        Err(StorageError::unsupported("query"))
    }

    /// How many vCons are stored. Declare `COUNT`.
    fn count(&self) -> Result<u64, StorageError> {
        Err(StorageError::unsupported("count"))
    }

    /// Health and statistics as a JSON object (pool state, row count, server version...).
    /// Declare `STATUS`.
    fn status(&self) -> Result<serde_json::Value, StorageError> {
        Err(StorageError::unsupported("status"))
    }

    /// Creates or migrates the schema, bucket or directory; `recreate` drops what exists first.
    /// Answers a JSON report of what was done. Declare `PROVISION`.
    fn provision(&self, request: &ProvisionRequest) -> Result<serde_json::Value, StorageError> {
        let _ = request;
        Err(StorageError::unsupported("provision"))
    }

    /// Removes every stored vCon, answering how many. Declare `CLEAR`.
    fn clear(&self) -> Result<u64, StorageError> {
        Err(StorageError::unsupported("clear"))
    }

    /// Flushes and releases resources before the host drops the instance.
    fn close(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// A named operation outside the fixed set, with JSON in and out: experimental or rare
    /// features that should not need an ABI change.
    fn call(&self, op: &str, payload_json: &[u8]) -> Result<Vec<u8>, StorageError> {
        let _ = payload_json;
        Err(StorageError::unsupported(op))
    }

    /// This instance's capabilities when its options narrow the plugin's declared set (a
    /// read-only mount, a store without conditional puts). `None` keeps the declared set.
    fn instance_capabilities(&self) -> Option<Capabilities> {
        None
    }
}

/// A plugin: its identity, what it can do, and how to open a storage from `options:`.
pub trait StoragePlugin: Storage + Sized {
    /// The typed `options:` map. Use `#[serde(deny_unknown_fields)]` so typos are refused.
    type Options: serde::de::DeserializeOwned;

    /// The name `module: storage.NAME` refers to in `config.yml`.
    const NAME: &'static str;
    /// The plugin's version; usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// One line saying what the plugin stores into, for `plugins list`.
    const DESCRIPTION: &'static str;
    /// The optional operations implemented. Must be honest: the conformance suite calls every
    /// undeclared operation and expects `Unsupported`.
    const CAPABILITIES: Capabilities;

    /// The options with their defaults, as a JSON object, shown by `plugins list` and used in
    /// docs. Secrets must not have real defaults here.
    fn option_defaults() -> serde_json::Value {
        serde_json::Value::Object(serde_json::Map::new())
    }

    /// Opens one storage from its parsed options. Called once per configured storage, so two
    /// storages on this plugin are two independent instances.
    fn open(options: Self::Options, context: &OpenContext) -> Result<Self, StorageError>;
}

/// What the host tells a plugin when it opens a storage.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenContext {}

/// A page request for [`Storage::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListRequest {
    /// At most this many uuids (0 means the storage's default page size).
    pub limit: u32,
    /// The cursor a previous page returned in [`ListPage::next`].
    pub after: Option<String>,
}

/// A page of uuids from [`Storage::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListPage {
    /// The uuids on this page, newest first where the storage knows `created_at`.
    pub uuids: Vec<String>,
    /// The cursor for the next page, `None` on the last page.
    pub next: Option<String>,
}

/// A search by party identifiers for [`Storage::query`]: every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartyQuery {
    /// A party's `tel`, as written in the vCon.
    pub tel: Option<String>,
    /// A party's `mailto`.
    pub mailto: Option<String>,
    /// A party's `name`.
    pub name: Option<String>,
    /// At most this many uuids (0 means no limit).
    pub limit: u32,
}

/// A request to [`Storage::provision`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProvisionRequest {
    /// Drop what exists (tables, objects) before creating it anew.
    pub recreate: bool,
}
