//! `vcon-host dlq list|replay NAME`: inspect and replay dead letters.
//!
//! `NAME` is an ingress list (its dead letters are `DLQ:NAME`: link failures, replayed by
//! moving the uuids back onto the ingress list so the whole chain runs again, as the Python
//! server's `/dlq/reprocess` does) or `storage:STORAGE` (`DLQ:storage:STORAGE`: failed
//! writes, replayed by re-running only that storage's write).

use std::io::Write;

use anyhow::{anyhow, Result};

use crate::broker::{self, Broker, ListEntry};
use crate::pipeline::Pipeline;

/// The dead-letter list `name` refers to, and the storage when it is a storage's.
fn resolve(name: &str) -> (String, Option<&str>) {
    match name.strip_prefix("storage:") {
        Some(storage) => (broker::storage_dlq(storage), Some(storage)),
        None => (
            broker::ingress_dlq(name.strip_prefix("DLQ:").unwrap_or(name)),
            None,
        ),
    }
}

/// Why a dead letter was dead-lettered, from its note (empty when it has none).
pub fn reason(entry: &ListEntry) -> String {
    entry
        .note
        .as_deref()
        .and_then(|n| serde_json::from_str::<serde_json::Value>(n).ok())
        .and_then(|n| n.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// Prints the dead letters of `name`, oldest first, with their reasons.
pub fn list(broker: &dyn Broker, name: &str, limit: usize, out: &mut dyn Write) -> Result<bool> {
    let (list, _) = resolve(name);
    let entries = broker.entries(&list, limit)?;
    for entry in &entries {
        writeln!(out, "{}\t{}", entry.uuid, reason(entry))?;
    }
    writeln!(out, "{} in {list}", broker.len(&list)?)?;
    Ok(true)
}

/// Replays up to `count` dead letters of `name`. Answers whether all replayed.
pub fn replay(
    broker: &dyn Broker,
    pipeline: &Pipeline,
    name: &str,
    count: usize,
    out: &mut dyn Write,
) -> Result<bool> {
    let (list, storage) = resolve(name);
    let Some(storage) = storage else {
        let ingress = list.trim_start_matches("DLQ:").to_owned();
        let moved = requeue_ingress(broker, &ingress, count)?;
        writeln!(out, "moved {moved} from {list} back to {ingress}")?;
        return Ok(true);
    };
    let outcome = replay_storage(broker, pipeline, storage, count)?;
    if let Some((uuid, err)) = &outcome.stopped_at {
        writeln!(
            out,
            "replay of {uuid} into {storage} failed, stopping (it stays dead-lettered): {err}"
        )?;
        writeln!(out, "replayed {} of {}", outcome.replayed, outcome.taken)?;
        return Ok(false);
    }
    writeln!(
        out,
        "replayed {} of {} into {storage}",
        outcome.replayed, outcome.taken
    )?;
    Ok(true)
}

/// Moves up to `count` dead letters of an ingress list back onto it, oldest first, so the
/// whole chain runs again (the Python server's `POST /dlq/reprocess`). Answers how many moved.
pub fn requeue_ingress(broker: &dyn Broker, ingress: &str, count: usize) -> Result<usize> {
    let list = broker::ingress_dlq(ingress);
    let entries = broker.entries(&list, count)?;
    for entry in &entries {
        broker.finish(
            std::slice::from_ref(&entry.id),
            &broker::Finish {
                pushes: vec![(ingress.to_owned(), entry.uuid.clone())],
                dead_letters: Vec::new(),
            },
        )?;
    }
    Ok(entries.len())
}

/// What a storage replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageReplay {
    /// Dead letters taken from the list.
    pub taken: usize,
    /// Written and removed from the list.
    pub replayed: usize,
    /// The uuid whose write failed, and why: the replay stops there and the rest stay.
    pub stopped_at: Option<(String, String)>,
}

/// Re-runs only the failed storage write for up to `count` dead letters of `storage`, oldest
/// first, stopping at the first failure (the upstream server's `POST /dlq/storage/reprocess`).
/// Egress lists the chain still owed are pushed once no other storage write of the vCon is
/// pending.
pub fn replay_storage(
    broker: &dyn Broker,
    pipeline: &Pipeline,
    storage: &str,
    count: usize,
) -> Result<StorageReplay> {
    let list = broker::storage_dlq(storage);
    let handle = pipeline
        .storages
        .get(storage)
        .ok_or_else(|| super::vcons::unknown_storage(pipeline, storage))?;
    let entries = broker.entries(&list, count)?;
    let mut replayed = 0usize;
    for entry in &entries {
        let vcon = broker
            .get_vcons(&[&entry.uuid])?
            .pop()
            .flatten()
            .ok_or_else(|| {
                anyhow!(
                    "{}: the hot copy is gone (its time to live ran out), nothing to replay from; \
                     {replayed} replayed before it",
                    entry.uuid
                )
            })?;
        let record = crate::storages::record(&vcon);
        if let Err(err) = handle.with_permit(|s| s.save(&record)) {
            return Ok(StorageReplay {
                taken: entries.len(),
                replayed,
                stopped_at: Some((entry.uuid.clone(), err.to_string())),
            });
        }
        let owed = owed_egress(broker, entry, &list)?;
        broker.finish(
            std::slice::from_ref(&entry.id),
            &broker::Finish {
                pushes: owed.into_iter().map(|l| (l, entry.uuid.clone())).collect(),
                dead_letters: Vec::new(),
            },
        )?;
        replayed += 1;
    }
    Ok(StorageReplay {
        taken: entries.len(),
        replayed,
        stopped_at: None,
    })
}

/// The egress lists a dead-lettered vCon still owes, once no other storage write of it is
/// pending: the chain pushes egress only when every storage has the vCon.
fn owed_egress(broker: &dyn Broker, entry: &ListEntry, this_list: &str) -> Result<Vec<String>> {
    let others_pending = broker
        .lists()?
        .into_iter()
        .filter(|(l, _)| l.starts_with("DLQ:storage:") && l != this_list)
        .try_fold(false, |pending, (l, _)| -> Result<bool> {
            Ok(pending
                || broker
                    .entries(&l, usize::MAX)?
                    .iter()
                    .any(|e| e.uuid == entry.uuid))
        })?;
    if others_pending {
        return Ok(Vec::new());
    }
    Ok(entry
        .note
        .as_deref()
        .and_then(|n| serde_json::from_str::<serde_json::Value>(n).ok())
        .and_then(|n| n.get("egress_lists").cloned())
        .and_then(|l| serde_json::from_value(l).ok())
        .unwrap_or_default())
}
