//! A safe handle on one opened storage instance.

use std::fmt;

use plugin_abi::__private::{RResult, RSlice, RStr};
use plugin_abi::{Capabilities, ErrorKind, PluginStorageBox, VconRecord};

use crate::{CallError, PluginLibrary};

/// One storage opened from a plugin: the host's only way to call it.
///
/// Methods are synchronous and may block on I/O: the host calls them on its blocking pool
/// (unless [`Capabilities::NONBLOCKING`]). Operations the instance does not declare are refused
/// here with `UNSUPPORTED` without crossing the boundary, so a plugin that forgot a capability
/// bit cannot be called into code paths it did not promise.
pub struct StorageInstance {
    library: &'static PluginLibrary,
    storage: PluginStorageBox,
    capabilities: Capabilities,
}

impl fmt::Debug for StorageInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageInstance")
            .field("plugin", &self.library.meta().name)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

fn answer<T>(result: RResult<T, plugin_abi::PluginError>) -> Result<T, CallError> {
    result.into_result().map_err(CallError::from)
}

fn decode<T: serde::de::DeserializeOwned>(op: &str, json: &str) -> Result<T, CallError> {
    serde_json::from_str(json).map_err(|err| {
        CallError::new(
            ErrorKind::INTERNAL,
            format!("the plugin answered {op} with malformed JSON: {err}"),
        )
    })
}

impl StorageInstance {
    pub(crate) fn new(library: &'static PluginLibrary, storage: PluginStorageBox) -> Self {
        // Known bits only, and never more than the plugin declared statically.
        let capabilities = storage
            .capabilities()
            .intersection(library.meta().capabilities);
        Self {
            library,
            storage,
            capabilities,
        }
    }

    /// The plugin this instance came from.
    pub fn library(&self) -> &'static PluginLibrary {
        self.library
    }

    /// What this instance supports.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Calls the plugin even for operations it did not declare: for the conformance suite,
    /// which checks that undeclared operations answer `UNSUPPORTED`.
    pub fn raw(&self) -> &PluginStorageBox {
        &self.storage
    }

    fn require(&self, capability: Capabilities, op: &str) -> Result<(), CallError> {
        if self.capabilities.contains(capability) {
            Ok(())
        } else {
            Err(CallError::new(
                ErrorKind::UNSUPPORTED,
                format!(
                    "plugin {} does not support `{op}`",
                    self.library.meta().name
                ),
            ))
        }
    }

    /// Stores a vCon (an upsert).
    pub fn save(&self, record: &VconRecord<'_>) -> Result<(), CallError> {
        answer(self.storage.save(*record))
    }

    /// Reads a vCon back; `None` when it is not stored.
    pub fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, CallError> {
        self.require(Capabilities::GET, "get")?;
        Ok(answer(self.storage.get(uuid.into()))?
            .into_option()
            .map(|bytes| bytes.into_vec()))
    }

    /// Removes a vCon; `false` when it was not stored.
    pub fn delete(&self, uuid: &str) -> Result<bool, CallError> {
        self.require(Capabilities::DELETE, "delete")?;
        answer(self.storage.delete(uuid.into()))
    }

    /// Whether a vCon is stored.
    pub fn exists(&self, uuid: &str) -> Result<bool, CallError> {
        self.require(Capabilities::EXISTS, "exists")?;
        answer(self.storage.exists(uuid.into()))
    }

    /// Stores a batch: one result per record. Without native batches, saves one at a time.
    pub fn save_many(
        &self,
        records: &[VconRecord<'_>],
    ) -> Result<Vec<Result<(), CallError>>, CallError> {
        if !self.capabilities.contains(Capabilities::BATCH) {
            return Ok(records.iter().map(|r| self.save(r)).collect());
        }
        let results = answer(self.storage.save_many(RSlice::from_slice(records)))?;
        if results.len() != records.len() {
            return Err(CallError::new(
                ErrorKind::INTERNAL,
                format!(
                    "plugin {} answered save_many with {} results for {} records",
                    self.library.meta().name,
                    results.len(),
                    records.len()
                ),
            ));
        }
        Ok(results.into_iter().map(answer).collect())
    }

    /// Reads a batch: one answer per uuid, in order. Without native batches, one at a time.
    pub fn get_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, CallError> {
        if !self.capabilities.contains(Capabilities::BATCH) {
            return uuids.iter().map(|u| self.get(u)).collect();
        }
        let uuids: Vec<RStr<'_>> = uuids.iter().map(|u| RStr::from(*u)).collect();
        Ok(answer(self.storage.get_many(RSlice::from_slice(&uuids)))?
            .into_iter()
            .map(|doc| doc.into_option().map(|bytes| bytes.into_vec()))
            .collect())
    }

    /// Removes a batch: one answer per uuid. Without native batches, one at a time.
    pub fn delete_many(&self, uuids: &[&str]) -> Result<Vec<bool>, CallError> {
        if !self.capabilities.contains(Capabilities::BATCH) {
            return uuids.iter().map(|u| self.delete(u)).collect();
        }
        let uuids: Vec<RStr<'_>> = uuids.iter().map(|u| RStr::from(*u)).collect();
        Ok(answer(self.storage.delete_many(RSlice::from_slice(&uuids)))?.into_vec())
    }

    /// Pages through stored uuids (`request` and answer as the SDK's `ListRequest`/`ListPage`).
    pub fn list(&self, request: &serde_json::Value) -> Result<serde_json::Value, CallError> {
        self.require(Capabilities::LIST, "list")?;
        let answer = answer(self.storage.list(request.to_string().as_str().into()))?;
        decode("list", answer.as_str())
    }

    /// Answers a party search (`query` as the SDK's `PartyQuery`): matching uuids.
    pub fn query(&self, query: &serde_json::Value) -> Result<Vec<String>, CallError> {
        self.require(Capabilities::QUERY, "query")?;
        let answer = answer(self.storage.query(query.to_string().as_str().into()))?;
        decode("query", answer.as_str())
    }

    /// How many vCons are stored.
    pub fn count(&self) -> Result<u64, CallError> {
        self.require(Capabilities::COUNT, "count")?;
        answer(self.storage.count())
    }

    /// Health and statistics.
    pub fn status(&self) -> Result<serde_json::Value, CallError> {
        self.require(Capabilities::STATUS, "status")?;
        let answer = answer(self.storage.status())?;
        decode("status", answer.as_str())
    }

    /// Creates or migrates the backend's schema; `recreate` drops it first.
    pub fn provision(&self, recreate: bool) -> Result<serde_json::Value, CallError> {
        self.require(Capabilities::PROVISION, "provision")?;
        let request = serde_json::json!({ "recreate": recreate }).to_string();
        let answer = answer(self.storage.provision(request.as_str().into()))?;
        decode("provision", answer.as_str())
    }

    /// Removes every stored vCon.
    pub fn clear(&self) -> Result<u64, CallError> {
        self.require(Capabilities::CLEAR, "clear")?;
        answer(self.storage.clear())
    }

    /// A named operation outside the fixed set.
    pub fn call(&self, op: &str, payload_json: &[u8]) -> Result<Vec<u8>, CallError> {
        Ok(answer(
            self.storage
                .call(op.into(), RSlice::from_slice(payload_json)),
        )?
        .into_vec())
    }

    /// Lets the plugin flush and release resources.
    pub fn close(&self) -> Result<(), CallError> {
        answer(self.storage.close())
    }
}
