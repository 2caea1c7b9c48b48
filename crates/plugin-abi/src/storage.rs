//! The storage trait object: one opened storage instance, as the host calls it.

use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec};

use crate::{Capabilities, PluginError, VconRecord};

/// An opened storage, called by the host through a vtable.
///
/// Calls are synchronous: the host runs them on its blocking pool under a per-storage
/// concurrency limit (plugins declaring [`Capabilities::NONBLOCKING`] may be called inline), so a
/// plugin never sees the host's async runtime. A plugin needing async I/O owns its own runtime.
///
/// `save` is required; every other operation has a default body answering
/// [`ErrorKind::UNSUPPORTED`](crate::ErrorKind::UNSUPPORTED), so a missing implementation is
/// always a safe answer, and methods appended in a later 1.x get the same default for older
/// plugins. JSON-shaped requests and answers (`list`, `query`, `status`, `provision`, `call`)
/// cross as UTF-8 JSON so their schema can grow without an ABI change.
///
/// `Send + Sync` is part of the layout and cannot be added in a minor version, which is why it
/// is here from 1.0: the host calls one instance from many threads at once.
#[sabi_trait]
pub trait PluginStorage: Send + Sync {
    /// What this instance supports: the plugin's declared set, possibly narrowed by its options.
    fn capabilities(&self) -> Capabilities;

    /// Stores a vCon, replacing any stored copy with the same uuid (saves are idempotent).
    fn save(&self, record: VconRecord<'_>) -> RResult<(), PluginError>;

    /// Reads a vCon's JSON back; `RNone` when it is not stored (not found is not an error).
    fn get(&self, uuid: RStr<'_>) -> RResult<ROption<RVec<u8>>, PluginError> {
        let _ = uuid;
        RResult::RErr(PluginError::unsupported("get"))
    }

    /// Removes a vCon; `false` when it was not stored.
    fn delete(&self, uuid: RStr<'_>) -> RResult<bool, PluginError> {
        let _ = uuid;
        RResult::RErr(PluginError::unsupported("delete"))
    }

    /// Whether a vCon is stored, without transferring it.
    fn exists(&self, uuid: RStr<'_>) -> RResult<bool, PluginError> {
        let _ = uuid;
        RResult::RErr(PluginError::unsupported("exists"))
    }

    /// Stores a batch. The outer error means the whole batch failed for one reason; otherwise
    /// the answer has one result per record, in order, so the host can dead-letter exactly the
    /// records that failed.
    fn save_many(
        &self,
        records: RSlice<'_, VconRecord<'_>>,
    ) -> RResult<RVec<RResult<(), PluginError>>, PluginError> {
        let _ = records;
        RResult::RErr(PluginError::unsupported("save_many"))
    }

    /// Reads a batch: one answer per uuid, in order, `RNone` for each one not stored.
    fn get_many(
        &self,
        uuids: RSlice<'_, RStr<'_>>,
    ) -> RResult<RVec<ROption<RVec<u8>>>, PluginError> {
        let _ = uuids;
        RResult::RErr(PluginError::unsupported("get_many"))
    }

    /// Removes a batch: one answer per uuid, in order, `false` for each one not stored.
    fn delete_many(&self, uuids: RSlice<'_, RStr<'_>>) -> RResult<RVec<bool>, PluginError> {
        let _ = uuids;
        RResult::RErr(PluginError::unsupported("delete_many"))
    }

    /// Pages through stored uuids; request and answer are JSON (see the SDK's `ListRequest`).
    fn list(&self, request_json: RStr<'_>) -> RResult<RString, PluginError> {
        let _ = request_json;
        RResult::RErr(PluginError::unsupported("list"))
    }

    /// Answers a search; request and answer are JSON (see the SDK's `Query`).
    fn query(&self, request_json: RStr<'_>) -> RResult<RString, PluginError> {
        let _ = request_json;
        RResult::RErr(PluginError::unsupported("query"))
    }

    /// How many vCons are stored.
    fn count(&self) -> RResult<u64, PluginError> {
        RResult::RErr(PluginError::unsupported("count"))
    }

    /// Health and statistics as a JSON object, for `vcon-host plugins status` and `/health`.
    fn status(&self) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::unsupported("status"))
    }

    /// Creates or migrates what the storage needs (schema, bucket, directory); the request is a
    /// JSON object such as `{"recreate": false}`, the answer a JSON report of what was done.
    fn provision(&self, request_json: RStr<'_>) -> RResult<RString, PluginError> {
        let _ = request_json;
        RResult::RErr(PluginError::unsupported("provision"))
    }

    /// Removes every stored vCon and answers how many were removed.
    fn clear(&self) -> RResult<u64, PluginError> {
        RResult::RErr(PluginError::unsupported("clear"))
    }

    /// Releases connections and flushes buffers before the host drops the instance.
    fn close(&self) -> RResult<(), PluginError> {
        RResult::ROk(())
    }

    /// The escape hatch: a named operation with a JSON payload and a JSON answer, so an
    /// experimental or rarely used operation needs no ABI change.
    #[sabi(last_prefix_field)]
    fn call(&self, op: RStr<'_>, payload_json: RSlice<'_, u8>) -> RResult<RVec<u8>, PluginError> {
        let _ = payload_json;
        RResult::RErr(PluginError::unsupported(op.as_str()))
    }
}

/// An owned, type-erased storage instance as `open` returns it.
pub type PluginStorageBox = PluginStorage_TO<'static, RBox<()>>;
