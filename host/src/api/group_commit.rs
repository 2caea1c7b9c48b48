//! Group commit of the API's ingests: concurrent `POST /vcon`s (and external ingests) share one
//! broker transaction.
//!
//! Why: with several clients, each request's own commit (for the embedded broker, its own pages
//! appended to the WAL; for Redis, its own round trip) is most of what the broker costs, and one
//! commit for every request that arrived while the previous one was being written costs about as
//! much as a commit for one.
//!
//! How, without a thread of its own (so a lone client pays no hand-off between threads): a
//! request that finds nobody writing becomes the *leader*. It writes its own vCon together with
//! every request queued so far, answers them, and hands the lead to the oldest request that
//! queued meanwhile, or steps down if there is none. A request that finds a leader at work
//! queues itself and waits for its answer, or for the lead. Handing the lead on, rather than
//! keeping it, means no request waits behind more than one batch of others.
//!
//! A request whose client went away while it was queued is dropped unwritten: it was never
//! acknowledged, so nothing acknowledged is lost.
//!
//! Where the write runs: for the embedded broker, on a writer thread
//! ([`GroupCommit::with_writer`], a [`PollThread`], which `run` shares with the document
//! [`super::stager`]) when `run` could start one, else inline on the API thread. The writer
//! thread answers every request of the batch itself, so a leader whose client goes away
//! mid-write costs the others nothing. Why a thread, when a hand-off is
//! what the leader pattern avoids: the API thread's own work (HTTP, validation, the socket
//! writes) and SQLite's (its page cache, B-trees and WAL) evicted each other from one core's
//! caches, and the broker write took 61 µs inside a one-client `POST` against 39 µs alone. On
//! a second core that polls for its next job, the hand-off costs no system call, and the write
//! finds its caches warm. One client posting the 5 KB vCon, alternated on one machine with the
//! inline write: p50 77–90 µs against 121–131 µs (docs/benchmarks.md). The API thread also goes
//! on reading and validating requests while a batch is written, so the next batch forms
//! meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::poll_thread::PollThread;
use super::ApiError;
use crate::broker::{Broker, HotVcon, IngestBatch};

/// At most this many vCons in one transaction, so one commit stays short.
const MAX_BATCH_VCONS: usize = 256;

/// At most this many bytes of vCon JSON in one transaction (a batch of large vCons).
const MAX_BATCH_BYTES: usize = 32 << 20;

/// One request's ingest: a validated vCon, the lists to queue it on, its time to live.
#[derive(Debug)]
pub struct Ingest {
    /// The vCon.
    pub vcon: HotVcon,
    /// The lists its uuid is appended to.
    pub lists: Vec<String>,
    /// Its time to live in the hot store.
    pub ttl: Option<Duration>,
}

/// What a queued request is told: its batch's outcome, or that it leads now (with its own
/// ingest back, to write first).
#[derive(Debug)]
enum Turn {
    Done(Result<(), Arc<str>>),
    Lead(Ingest),
}

#[derive(Debug)]
struct Queued {
    ingest: Ingest,
    answer: oneshot::Sender<Turn>,
}

/// The queue of ingests waiting for the leader, shared by every API request.
#[derive(Debug, Default)]
pub struct GroupCommit {
    queue: Mutex<VecDeque<Queued>>,
    leading: AtomicBool,
    /// Where an embedded broker's batches are written; `None`: on the leader's own thread.
    writer: Option<Arc<PollThread>>,
}

impl GroupCommit {
    /// A group commit that writes an embedded broker's batches on `writer` (see the module
    /// docs); [`GroupCommit::default`] writes them on the leader's thread.
    pub fn with_writer(writer: impl Into<Arc<PollThread>>) -> Self {
        Self {
            writer: Some(writer.into()),
            ..Self::default()
        }
    }

    /// Stores `ingest` through `broker`, in one transaction with whatever other requests are
    /// doing the same; answers once it is committed.
    pub async fn ingest(&self, broker: &Arc<dyn Broker>, ingest: Ingest) -> Result<(), ApiError> {
        if self.try_lead() {
            // Held across the yield: a request dropped there hands the lead on.
            let leader = Leader(self);
            // Lets the runtime read and parse the requests that arrived with this one, so they
            // queue and share its commit: with one API thread, nothing else runs while the
            // leader gathers its batch (or writes it inline). A lone request pays one pass of
            // the scheduler.
            tokio::task::yield_now().await;
            return self
                .lead(leader, broker, Some(ingest))
                .await
                .map_err(batch_error);
        }
        let (answer, turn) = oneshot::channel();
        self.queue().push_back(Queued { ingest, answer });
        let mut waiting = Waiting { commit: self, turn };
        // The leader may have stepped down between `try_lead` and the push, without seeing
        // this request: then lead with the queue as it is (this request included; its answer
        // arrives below like any other).
        if self.try_lead() {
            let _ = self.lead(Leader(self), broker, None).await;
        }
        match (&mut waiting.turn).await {
            Ok(Turn::Done(result)) => result.map_err(batch_error),
            Ok(Turn::Lead(own)) => self
                .lead(Leader(self), broker, Some(own))
                .await
                .map_err(batch_error),
            Err(_) => Err(ApiError::internal(
                "the request writing this vCon's batch stopped before answering; the vCon may \
                 or may not be stored: post it again (ingest is idempotent)",
            )),
        }
    }

    /// How many requests wait for the leader now: lets a test (or a diagnostic) see that
    /// requests have queued without timing guesses.
    pub fn queued(&self) -> usize {
        self.queue().len()
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn try_lead(&self) -> bool {
        self.leading
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Writes `own` (if any) and a batch of the queue, answers the queued ones, and hands the
    /// lead on once the batch is written (also when the leader is dropped or the write panics:
    /// `_leader`'s drop does it). Answers `own`'s outcome.
    async fn lead(
        &self,
        _leader: Leader<'_>,
        broker: &Arc<dyn Broker>,
        own: Option<Ingest>,
    ) -> Result<(), Arc<str>> {
        let mut bytes = own.as_ref().map_or(0, |i| i.vcon.json.len());
        let mut batch: Vec<(Ingest, Option<oneshot::Sender<Turn>>)> =
            own.into_iter().map(|ingest| (ingest, None)).collect();
        {
            let mut queue = self.queue();
            while batch.len() < MAX_BATCH_VCONS && bytes < MAX_BATCH_BYTES {
                let Some(queued) = queue.pop_front() else {
                    break;
                };
                bytes += queued.ingest.vcon.json.len();
                batch.push((queued.ingest, Some(queued.answer)));
            }
        }
        crate::metrics::global()
            .ingest_batch
            .observe(batch.len() as f64);
        let (ingests, answers): (Vec<Ingest>, Vec<_>) = batch.into_iter().unzip();
        let (own_answer, outcome) = oneshot::channel();
        let on_writer = self.writer.as_ref().filter(|_| broker.is_local());
        let broker = Arc::clone(broker);
        let write_and_answer = move || {
            let result = write(&*broker, ingests);
            for answer in answers.into_iter().flatten() {
                // A receiver gone means its client went away: nobody to tell.
                let _ = answer.send(Turn::Done(result.clone()));
            }
            let _ = own_answer.send(result);
        };
        match on_writer {
            Some(writer) => {
                if let Err(job) = writer.run(write_and_answer) {
                    job();
                }
            }
            None => write_and_answer(),
        }
        // Dropped unsent only when the write panicked (on the writer thread; on this one the
        // panic unwinds through here).
        outcome.await.unwrap_or_else(|_| {
            Err(Arc::from(
                "writing this vCon's batch to the broker panicked; the vCon may or may not be \
                 stored: post it again (ingest is idempotent)",
            ))
        })
    }

    /// Gives the lead to the oldest queued request whose client is still waiting, or steps
    /// down when there is none.
    fn hand_over(&self) {
        loop {
            let next = self.queue().pop_front();
            match next {
                Some(queued) => {
                    if queued.answer.send(Turn::Lead(queued.ingest)).is_ok() {
                        return;
                    }
                    // Its client went away before it was written or acknowledged: drop it.
                }
                None => {
                    self.leading.store(false, Ordering::Release);
                    // A request may have queued after the pop, while the lead was still taken:
                    // take the lead back to hand it to that one.
                    if self.queue().is_empty() || !self.try_lead() {
                        return;
                    }
                }
            }
        }
    }
}

/// A queued request's wait. Dropped before its answer (the client went away and the server
/// dropped the request), it passes on a lead handed to it meanwhile, so the queue never stalls
/// behind a leader that is gone.
struct Waiting<'a> {
    commit: &'a GroupCommit,
    turn: oneshot::Receiver<Turn>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // Closed first, so no lead can arrive after the look below.
        self.turn.close();
        if let Ok(Turn::Lead(_)) = self.turn.try_recv() {
            self.commit.hand_over();
        }
    }
}

/// Held while leading: handing the lead on when dropped, even by a panic, keeps the queue
/// moving.
struct Leader<'a>(&'a GroupCommit);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.0.hand_over();
    }
}

/// Commits `ingests` in one broker call: consecutive ones with the same lists and time to live
/// form one [`IngestBatch`]. The embedded broker answers in microseconds and is called inline;
/// a broker across the network from `block_in_place`, so the runtime's other tasks move on.
fn write(broker: &dyn Broker, ingests: Vec<Ingest>) -> Result<(), Arc<str>> {
    let mut groups: Vec<(Vec<String>, Option<Duration>, Vec<HotVcon>)> = Vec::new();
    for ingest in ingests {
        match groups.last_mut() {
            Some((lists, ttl, vcons)) if *lists == ingest.lists && *ttl == ingest.ttl => {
                vcons.push(ingest.vcon);
            }
            _ => groups.push((ingest.lists, ingest.ttl, vec![ingest.vcon])),
        }
    }
    let batches: Vec<IngestBatch<'_>> = groups
        .iter()
        .map(|(lists, ttl, vcons)| IngestBatch {
            vcons,
            lists,
            ttl: *ttl,
        })
        .collect();
    let call = || broker.ingest_batches(&batches);
    let result = if broker.is_local() {
        call()
    } else {
        tokio::task::block_in_place(call)
    };
    result.map_err(|err| {
        let count: usize = batches.iter().map(|b| b.vcons.len()).sum();
        tracing::error!("storing {count} posted vCon(s) in the broker failed: {err}");
        Arc::from(format!("broker: {err}"))
    })
}

/// The answer to every request of a batch that could not be committed (logged once, by the
/// leader).
fn batch_error(message: Arc<str>) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
}
