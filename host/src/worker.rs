//! Chain workers: threads that claim batches of uuids from ingress lists, run the chain's
//! links, write every storage of the chain in parallel, and only then push egress lists.
//!
//! A batch is one claim: up to `host.batch_size` uuids from one ingress list, so storages get
//! `save_many` (one round trip, one transaction) instead of one call per vCon. Finishing a batch
//! is one broker transaction: remove the claimed items, push egress lists, push dead letters.
//! A crash before that leaves the items claimed, and the next start puts them back
//! (at-least-once; saves are idempotent).
//!
//! Failures, as the design decides:
//! - a link error (or a vCon in no store at all) sends the uuid to `DLQ:{ingress_list}`;
//! - a storage error is retried with back-off while the plugin calls it retryable; what still
//!   fails goes to `DLQ:storage:{storage}` with the reason, and the hot copy is kept for the
//!   replay (its time to live becomes `host.dlq_ttl`). The other storages' writes stand. The
//!   egress push is owed until the last failed write is replayed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use plugin_loader::CallError;

use crate::broker::{self, Broker, Claim, DeadLetter, Finish, HotVcon, ItemId};
use crate::links::{Outcome, WorkingVcon};
use crate::pipeline::{Chain, Pipeline};

/// How long an idle worker waits before looking at the lists again. A look at lists the embedded
/// broker just found empty costs no transaction (`crates/broker/src/empty_lists.rs`), so idle
/// workers do not hold up the API's commits.
const IDLE_POLL: Duration = Duration::from_millis(10);

/// The pipeline workers read; swapped whole on reload.
pub type SharedPipeline = Arc<RwLock<Arc<Pipeline>>>;

/// Starts `count` worker threads. They stop, after finishing the batch in hand, once `stop` is
/// set.
pub fn spawn_workers(
    count: usize,
    broker: Arc<dyn Broker>,
    pipeline: SharedPipeline,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..count.max(1))
        .map(|index| {
            let broker = Arc::clone(&broker);
            let pipeline = Arc::clone(&pipeline);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("vcon-worker-{index}"))
                .spawn(move || {
                    let owner = format!("{}:{index}", std::process::id());
                    worker_loop(&owner, &*broker, &pipeline, &stop);
                })
        })
        .collect()
}

fn current(pipeline: &SharedPipeline) -> Arc<Pipeline> {
    Arc::clone(
        &pipeline
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

fn worker_loop(owner: &str, broker: &dyn Broker, pipeline: &SharedPipeline, stop: &AtomicBool) {
    let mut broker_failures = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let pipeline = current(pipeline);
        let lists = pipeline.ingress_lists();
        let batch = pipeline.config.host.batch_size.max(1);
        match broker.claim(&lists, owner, batch) {
            Ok(Some(claim)) => {
                broker_failures = 0;
                finish_claim(broker, &pipeline, &claim, stop);
            }
            Ok(None) => std::thread::sleep(IDLE_POLL),
            Err(err) => {
                broker_failures += 1;
                let wait = Duration::from_millis(100 * u64::from(broker_failures.min(50)));
                tracing::error!("broker unavailable, retrying in {wait:?}: {err}");
                std::thread::sleep(wait);
            }
        }
    }
}

/// Processes a claim until the broker has taken its outcome: a broker that went away (Redis
/// restarting) is retried with back-off, because this host is alive and nobody else will put
/// the claim back. Saves are idempotent, so a retry that repeats the writes stores nothing
/// twice. Given up only when the host stops: the claim then waits for the next start (or for
/// another host sharing the broker).
fn finish_claim(broker: &dyn Broker, pipeline: &Pipeline, claim: &Claim, stop: &AtomicBool) {
    let mut failures = 0u32;
    loop {
        match process_claim(broker, pipeline, claim) {
            Ok(()) => return,
            Err(err) => {
                failures += 1;
                let wait = Duration::from_millis(100 * u64::from(failures.min(50)));
                tracing::error!(
                    list = %claim.list,
                    "cannot finish a batch of {}, retrying in {wait:?}: {err}",
                    claim.items.len()
                );
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(wait);
            }
        }
    }
}

/// What happened to one vCon of a batch after its links.
enum Step {
    /// Links done: store it.
    Store(HotVcon, Vec<String>),
    /// A link dropped it (its pushes still happen).
    Dropped(Vec<String>),
    /// It goes to the ingress dead-letter list.
    Dead(String),
}

/// Runs one claimed batch through its chain and finishes it in the broker.
pub fn process_claim(
    broker: &dyn Broker,
    pipeline: &Pipeline,
    claim: &Claim,
) -> Result<(), broker::BrokerError> {
    let ids: Vec<ItemId> = claim.items.iter().map(|i| i.id.clone()).collect();
    let Some(chain) = pipeline.chain_for(&claim.list) else {
        // The chain was disabled by a reload while these waited: put them back untouched.
        let pushes = claim
            .items
            .iter()
            .map(|i| (claim.list.clone(), i.uuid.clone()))
            .collect();
        return broker.finish(
            &ids,
            &Finish {
                pushes,
                dead_letters: Vec::new(),
            },
        );
    };
    let uuids: Vec<&str> = claim.items.iter().map(|i| i.uuid.as_str()).collect();
    let hot = broker.get_vcons(&uuids)?;
    let host = &pipeline.config.host;

    let mut steps: Vec<(&str, Step)> = Vec::with_capacity(hot.len());
    for (uuid, found) in uuids.iter().copied().zip(hot) {
        let vcon = match found {
            Some(vcon) => Some(vcon),
            None => read_back(pipeline, uuid),
        };
        let step = match vcon {
            None => Step::Dead(format!(
                "vCon {uuid} is in no store: it expired from the hot store and no storage has it"
            )),
            Some(vcon) => run_links(broker, chain, vcon),
        };
        steps.push((uuid, step));
    }

    let to_store: Arc<Vec<HotVcon>> = Arc::new(
        steps
            .iter()
            .filter_map(|(_, s)| match s {
                Step::Store(vcon, _) => Some(vcon.clone()),
                _ => None,
            })
            .collect(),
    );
    let outcomes = write_storages(chain, &to_store, &host.retry);

    let mut finish = Finish::default();
    let mut stored = 0usize;
    let mut dlq_keep = Vec::new();
    for (uuid, step) in &steps {
        match step {
            Step::Dead(reason) => {
                tracing::warn!(uuid, list = %claim.list, "dead-lettered: {reason}");
                finish.dead_letters.push(DeadLetter {
                    list: broker::ingress_dlq(&claim.list),
                    uuid: (*uuid).to_owned(),
                    note: note(reason, &chain.name, &[]),
                });
            }
            Step::Dropped(pushes) => {
                finish
                    .pushes
                    .extend(pushes.iter().map(|l| (l.clone(), (*uuid).to_owned())));
            }
            Step::Store(vcon, pushes) => {
                let failures: Vec<(&str, &CallError)> = outcomes
                    .iter()
                    .filter_map(|(storage, results)| match &results[stored] {
                        Err(err) => Some((storage.as_str(), err)),
                        Ok(()) => None,
                    })
                    .collect();
                stored += 1;
                let routes = pushes.iter().map(|l| (l.clone(), vcon.uuid.clone()));
                if failures.is_empty() {
                    finish.pushes.extend(
                        chain
                            .egress_lists
                            .iter()
                            .map(|l| (l.clone(), vcon.uuid.clone()))
                            .chain(routes),
                    );
                } else {
                    finish.pushes.extend(routes);
                    for (storage, err) in failures {
                        tracing::error!(
                            uuid = %vcon.uuid,
                            storage,
                            "storage write failed for good, dead-lettered: {err}"
                        );
                        finish.dead_letters.push(DeadLetter {
                            list: broker::storage_dlq(storage),
                            uuid: vcon.uuid.clone(),
                            note: note(&err.to_string(), &chain.name, &chain.egress_lists),
                        });
                    }
                    dlq_keep.push(vcon.uuid.clone());
                }
            }
        }
    }
    for uuid in &dlq_keep {
        // Keep the hot copy for the replay; a failure here only shortens its life.
        let _ = broker.expire_vcon(uuid, host.dlq_ttl);
    }
    broker.finish(&ids, &finish)?;
    let metrics = crate::metrics::global();
    let dead = steps
        .iter()
        .filter(|(_, s)| matches!(s, Step::Dead(_)))
        .count();
    let dropped = steps
        .iter()
        .filter(|(_, s)| matches!(s, Step::Dropped(_)))
        .count();
    metrics.chain_finished(&chain.name, "stored", stored);
    metrics.chain_finished(&chain.name, "dropped", dropped);
    metrics.chain_finished(&chain.name, "dead_letter", dead);
    Ok(())
}

/// The note stored with a dead letter: why, in which chain, and which egress lists are owed.
fn note(reason: &str, chain: &str, egress: &[String]) -> String {
    serde_json::json!({
        "reason": reason,
        "chain": chain,
        "egress_lists": egress,
        "at": chrono::Utc::now().to_rfc3339(),
    })
    .to_string()
}

/// Looks for a vCon that left the hot store in the storages, in config order.
pub fn read_back(pipeline: &Pipeline, uuid: &str) -> Option<HotVcon> {
    for storage in pipeline.readable_storages() {
        match storage.with_permit(|s| s.get(uuid)) {
            Ok(Some(bytes)) => {
                match crate::broker::HotVcon::from_json(bytes.into(), crate::broker::now_us()) {
                    // A fallback hit must be this vCon (the Python server trusts any answer).
                    Ok(vcon) if vcon.uuid == uuid => return Some(vcon),
                    Ok(other) => tracing::warn!(
                        storage = storage.name(),
                        "asked for {uuid}, the storage answered {}; ignored",
                        other.uuid
                    ),
                    Err(err) => tracing::warn!(
                        storage = storage.name(),
                        "the stored copy of {uuid} is not a valid vCon; ignored: {err}"
                    ),
                }
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(storage = storage.name(), "reading {uuid} back: {err}"),
        }
    }
    None
}

/// Runs the chain's links on one vCon, re-validating and re-storing the hot copy if they
/// changed it.
fn run_links(broker: &dyn Broker, chain: &Chain, vcon: HotVcon) -> Step {
    let mut working = WorkingVcon::new(vcon.uuid.clone(), vcon.json.clone());
    for (name, link) in &chain.links {
        match link.run(&mut working) {
            Ok(Outcome::Continue) => {}
            Ok(Outcome::Drop) => {
                tracing::debug!(uuid = %vcon.uuid, link = %name, "dropped by link");
                return Step::Dropped(working.pushes);
            }
            Err(err) => return Step::Dead(format!("link {name} failed: {err}")),
        }
    }
    let ttl = working.ttl;
    let pushes = std::mem::take(&mut working.pushes);
    let (json, changed) = match working.into_json() {
        Ok(answer) => answer,
        Err(err) => return Step::Dead(err.to_string()),
    };
    let vcon = if changed {
        match vcon.reindex(json) {
            Ok(updated) => {
                if let Err(err) = broker.put_vcon(&updated) {
                    return Step::Dead(format!("cannot store the linked vCon: {err}"));
                }
                updated
            }
            Err(err) => return Step::Dead(format!("the links made the vCon invalid: {err}")),
        }
    } else {
        vcon
    };
    if ttl.is_some() {
        if let Err(err) = broker.expire_vcon(&vcon.uuid, ttl) {
            tracing::warn!(uuid = %vcon.uuid, "cannot set the time to live: {err}");
        }
    }
    Step::Store(vcon, pushes)
}

/// Writes the batch to every storage of the chain in parallel; one result list per storage.
fn write_storages(
    chain: &Chain,
    vcons: &Arc<Vec<HotVcon>>,
    policy: &host_config::RetryPolicy,
) -> Vec<(String, Vec<Result<(), CallError>>)> {
    if vcons.is_empty() {
        return Vec::new();
    }
    std::thread::scope(|scope| {
        let running: Vec<_> = chain
            .storages
            .iter()
            .map(|storage| {
                let storage = Arc::clone(storage);
                scope.spawn(move || {
                    let results = storage.save_batch(vcons, policy, chain.timeout);
                    (storage.name().to_owned(), results)
                })
            })
            .collect();
        running
            .into_iter()
            .zip(&chain.storages)
            .map(|(handle, storage)| {
                handle.join().unwrap_or_else(|_| {
                    let err = CallError::new(
                        plugin_loader::ErrorKind::INTERNAL,
                        "the storage call panicked in the host",
                    );
                    (storage.name().to_owned(), vec![Err(err); vcons.len()])
                })
            })
            .collect()
    })
}
