//! The `memory` storage plugin: vCons kept in a map inside the host process.
//!
//! For tests, benchmarks (it measures the plugin boundary with no I/O behind it) and as a cache
//! in front of a slower storage. Nothing survives a restart. Each opened storage has its own map,
//! so two storages on this plugin are independent. Optionally bounded by `max_entries`, evicting
//! the oldest insertion first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use plugin_sdk::{
    export_storage_plugin, BatchResult, Capabilities, ListPage, ListRequest, OpenContext, Storage,
    StorageError, StoragePlugin, VconRecord,
};

/// The `options:` of a memory storage.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Keep at most this many vCons, evicting the oldest insertion first (0: unbounded).
    pub max_entries: usize,
}

/// An in-memory storage.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    max_entries: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    docs: HashMap<String, Vec<u8>>,
    /// Insertion order, for eviction and listing (oldest first).
    order: VecDeque<String>,
}

impl MemoryStorage {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the map consistent (every mutation is one call),
        // so a poisoned lock is safe to keep using.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, state: &mut State, record: &VconRecord<'_>) {
        if state
            .docs
            .insert(record.uuid.to_owned(), record.json.to_vec())
            .is_none()
        {
            state.order.push_back(record.uuid.to_owned());
            if self.max_entries > 0 && state.docs.len() > self.max_entries {
                if let Some(oldest) = state.order.pop_front() {
                    state.docs.remove(&oldest);
                }
            }
        }
    }
}

impl Storage for MemoryStorage {
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> {
        let mut state = self.state();
        self.insert(&mut state, record);
        Ok(())
    }

    fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.state().docs.get(uuid).cloned())
    }

    fn delete(&self, uuid: &str) -> Result<bool, StorageError> {
        let mut state = self.state();
        let removed = state.docs.remove(uuid).is_some();
        if removed {
            state.order.retain(|u| u != uuid);
        }
        Ok(removed)
    }

    fn exists(&self, uuid: &str) -> Result<bool, StorageError> {
        Ok(self.state().docs.contains_key(uuid))
    }

    fn save_many(&self, records: &[VconRecord<'_>]) -> BatchResult {
        let mut state = self.state();
        for record in records {
            self.insert(&mut state, record);
        }
        Ok(vec![Ok(()); records.len()])
    }

    fn get_many(&self, uuids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let state = self.state();
        Ok(uuids.iter().map(|u| state.docs.get(*u).cloned()).collect())
    }

    fn delete_many(&self, uuids: &[&str]) -> Result<Vec<bool>, StorageError> {
        let mut state = self.state();
        let removed: Vec<bool> = uuids
            .iter()
            .map(|u| state.docs.remove(*u).is_some())
            .collect();
        let State { docs, order } = &mut *state;
        order.retain(|u| docs.contains_key(u));
        Ok(removed)
    }

    fn list(&self, request: &ListRequest) -> Result<ListPage, StorageError> {
        let state = self.state();
        let limit = if request.limit == 0 {
            100
        } else {
            request.limit as usize
        };
        // Newest insertion first; the cursor is the last uuid of the previous page.
        let mut newest_first = state.order.iter().rev().peekable();
        if let Some(after) = &request.after {
            for uuid in newest_first.by_ref() {
                if uuid == after {
                    break;
                }
            }
        }
        let uuids: Vec<String> = newest_first.by_ref().take(limit).cloned().collect();
        let next = if newest_first.peek().is_some() {
            uuids.last().cloned()
        } else {
            None
        };
        Ok(ListPage { uuids, next })
    }

    fn count(&self) -> Result<u64, StorageError> {
        Ok(self.state().docs.len() as u64)
    }

    fn status(&self) -> Result<serde_json::Value, StorageError> {
        let state = self.state();
        Ok(serde_json::json!({
            "entries": state.docs.len(),
            "bytes": state.docs.values().map(Vec::len).sum::<usize>(),
            "max_entries": self.max_entries,
        }))
    }

    fn clear(&self) -> Result<u64, StorageError> {
        let mut state = self.state();
        let n = state.docs.len() as u64;
        state.docs.clear();
        state.order.clear();
        Ok(n)
    }
}

impl StoragePlugin for MemoryStorage {
    type Options = Options;
    const NAME: &'static str = "memory";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "vCons in a map inside the host process (tests, caching)";
    const CAPABILITIES: Capabilities = Capabilities::GET
        .union(Capabilities::DELETE)
        .union(Capabilities::EXISTS)
        .union(Capabilities::BATCH)
        .union(Capabilities::LIST)
        .union(Capabilities::COUNT)
        .union(Capabilities::STATUS)
        .union(Capabilities::CLEAR)
        .union(Capabilities::NONBLOCKING);

    fn option_defaults() -> serde_json::Value {
        serde_json::json!({ "max_entries": 0 })
    }

    fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> {
        Ok(Self {
            max_entries: options.max_entries,
            state: Mutex::default(),
        })
    }
}

export_storage_plugin!(MemoryStorage);
