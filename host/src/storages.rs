//! The storages of a config, opened from their plugins, and how the host calls them: under a
//! per-storage concurrency limit, with a time-out, retrying what the plugin says is retryable.
//!
//! Calls are synchronous and run on the calling thread (a chain worker or the API's blocking
//! pool), never on an async worker. A call that outlives the chain's `timeout` is abandoned: the
//! caller gets an `UNAVAILABLE` error (so it is retried or dead-lettered) while the plugin call
//! finishes on its own thread; saves are idempotent, so a late success is harmless.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use host_config::{Config, PluginSource, RetryPolicy, StorageConfig};
use plugin_loader::{CallError, ErrorKind, PluginLibrary, SearchPath, Sha256Pin, StorageInstance};
use rand::Rng;

use crate::broker::HotVcon;

/// One opened storage.
#[derive(Debug)]
pub struct StorageHandle {
    name: String,
    instance: StorageInstance,
    permits: Permits,
}

/// A counting semaphore for plain threads: at most N calls into one storage at once.
#[derive(Debug)]
struct Permits {
    free: Mutex<usize>,
    released: Condvar,
}

impl Permits {
    fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n.max(1)),
            released: Condvar::new(),
        }
    }

    fn acquire(&self) -> PermitGuard<'_> {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *free == 0 {
            free = self
                .released
                .wait(free)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        PermitGuard(self)
    }
}

struct PermitGuard<'a>(&'a Permits);

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        let mut free = self
            .0
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *free += 1;
        self.0.released.notify_one();
    }
}

/// The record a plugin receives for a hot-store vCon (borrowed, no copy).
pub fn record(vcon: &HotVcon) -> plugin_loader::VconRecord<'_> {
    plugin_loader::VconRecord::new(&vcon.uuid, &vcon.json, vcon.created_at_us)
        .with_offset(vcon.created_at_offset_s)
        .with_updated_at(vcon.updated_at_us)
        .with_subject(vcon.subject.as_deref())
}

impl StorageHandle {
    /// The storage's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The opened plugin instance, for operations the host does not wrap.
    pub fn instance(&self) -> &StorageInstance {
        &self.instance
    }

    /// Runs `op` under the storage's concurrency limit.
    pub fn with_permit<T>(&self, op: impl FnOnce(&StorageInstance) -> T) -> T {
        let _permit = self.permits.acquire();
        op(&self.instance)
    }

    /// Saves a batch with retries: items that fail with a retryable error are retried (only
    /// those) with exponential back-off and jitter, honouring the plugin's retry hint. Answers
    /// one result per vCon: what still failed after the last attempt.
    pub fn save_batch(
        self: &Arc<Self>,
        vcons: &Arc<Vec<HotVcon>>,
        policy: &RetryPolicy,
        timeout: Option<Duration>,
    ) -> Vec<Result<(), CallError>> {
        let started = std::time::Instant::now();
        let mut results: Vec<Result<(), CallError>> = vec![Ok(()); vcons.len()];
        let mut pending: Vec<usize> = (0..vcons.len()).collect();
        let attempts = policy.max_attempts.max(1);
        for attempt in 0..attempts {
            let answers = self.save_indices(vcons, &pending, timeout);
            let mut retry = Vec::new();
            let mut hint = Duration::ZERO;
            for (index, answer) in pending.iter().zip(answers) {
                match answer {
                    Err(err) if err.is_retryable() && attempt + 1 < attempts => {
                        hint = hint.max(err.retry_after.unwrap_or_default());
                        retry.push(*index);
                    }
                    other => results[*index] = other,
                }
            }
            if retry.is_empty() {
                break;
            }
            let wait = backoff(policy, attempt).max(hint);
            tracing::warn!(
                storage = %self.name,
                failed = retry.len(),
                attempt = attempt + 1,
                wait_ms = wait.as_millis() as u64,
                "storage unavailable, retrying"
            );
            std::thread::sleep(wait);
            pending = retry;
        }
        let failed = results.iter().filter(|r| r.is_err()).count();
        crate::metrics::global().storage_call(
            &self.name,
            started.elapsed(),
            results.len() - failed,
            failed,
        );
        results
    }

    /// One attempt at saving the vCons at `indices`, on a thread of its own so a time-out can
    /// abandon it.
    fn save_indices(
        self: &Arc<Self>,
        vcons: &Arc<Vec<HotVcon>>,
        indices: &[usize],
        timeout: Option<Duration>,
    ) -> Vec<Result<(), CallError>> {
        let call = {
            let storage = Arc::clone(self);
            let vcons = Arc::clone(vcons);
            let indices = indices.to_vec();
            move || {
                let records: Vec<_> = indices.iter().map(|i| record(&vcons[*i])).collect();
                let started = Instant::now();
                let answer = storage.with_permit(|instance| instance.save_many(&records));
                tracing::trace!(
                    storage = %storage.name,
                    records = records.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "save_many"
                );
                answer
            }
        };
        let answer = match timeout {
            None => call(),
            Some(limit) => {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let spawned = std::thread::Builder::new()
                    .name(format!("vcon-store-{}", self.name))
                    .spawn(move || {
                        let _ = tx.send(call());
                    });
                match spawned {
                    Err(err) => Err(CallError::new(
                        ErrorKind::UNAVAILABLE,
                        format!("cannot start a thread for the storage call: {err}"),
                    )),
                    Ok(_) => rx.recv_timeout(limit).unwrap_or_else(|_| {
                        Err(CallError::new(
                            ErrorKind::UNAVAILABLE,
                            format!("storage call timed out after {limit:?} (chain timeout)"),
                        ))
                    }),
                }
            }
        };
        match answer {
            Ok(per_item) => per_item,
            Err(err) => vec![Err(err); indices.len()],
        }
    }
}

/// The wait before retry number `attempt` (0-based): exponential, capped, with full jitter so
/// many workers do not retry in lockstep.
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .initial_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(policy.max_backoff);
    if policy.jitter && !exp.is_zero() {
        let millis = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    } else {
        exp
    }
}

/// Every storage of a config, opened, in config order (the read fallback order).
#[derive(Debug, Default)]
pub struct Storages {
    handles: Vec<Arc<StorageHandle>>,
}

impl Storages {
    /// Loads each storage's plugin and opens it with its options. Answers every failure, each
    /// prefixed with the config file, line and storage name.
    pub fn open(config: &Config, search: &SearchPath) -> Result<Self, Vec<String>> {
        let mut handles = Vec::new();
        let mut errors = Vec::new();
        for storage in &config.storages {
            match open_one(config, storage, search) {
                Ok(handle) => handles.push(Arc::new(handle)),
                Err(err) => errors.push(format!(
                    "{}:{}: storages.{}: {err}",
                    config.file.display(),
                    storage.line,
                    storage.name
                )),
            }
        }
        if errors.is_empty() {
            Ok(Self { handles })
        } else {
            Err(errors)
        }
    }

    /// A storage by config name.
    pub fn get(&self, name: &str) -> Option<&Arc<StorageHandle>> {
        self.handles.iter().find(|h| h.name == name)
    }

    /// Every storage, in config order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<StorageHandle>> {
        self.handles.iter()
    }
}

/// Finds, loads and opens one storage's plugin.
pub fn open_one(
    config: &Config,
    storage: &StorageConfig,
    search: &SearchPath,
) -> Result<StorageHandle, String> {
    let library = match &storage.source {
        PluginSource::Module { plugin, .. } => {
            let path = search.find(plugin).map_err(|e| e.to_string())?;
            let library = PluginLibrary::load(&path, None).map_err(|e| e.to_string())?;
            library.expect_name(plugin).map_err(|e| e.to_string())?;
            library
        }
        PluginSource::File { path, sha256 } => {
            let pin = sha256
                .as_deref()
                .map(Sha256Pin::parse)
                .transpose()
                .map_err(|e| format!("sha256: {e}"))?;
            PluginLibrary::load(path, pin.as_ref()).map_err(|e| e.to_string())?
        }
    };
    let instance = library
        .open(&storage.options.to_string())
        .map_err(|e| format!("options: {e}"))?;
    Ok(StorageHandle {
        name: storage.name.clone(),
        instance,
        permits: Permits::new(
            storage
                .max_concurrency
                .unwrap_or(config.host.storage_concurrency),
        ),
    })
}
