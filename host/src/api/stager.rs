//! The document stager: a thread that writes a large posted document ahead of its ingest
//! ([`Broker::stage_document`]) while the API thread validates it.
//!
//! Why a thread of its own rather than the runtime's blocking pool, which did this before: each
//! `spawn_blocking` woke a pool thread that had gone to sleep, and on a virtual machine waking a
//! thread on an idle core is a system call that sends an inter-processor interrupt. `perf record`
//! of one client posting cat1 put about 3 % of the API thread in that wake-up, and `perf trace`
//! showed a second system call now and then, when the woken thread found the pool's lock still
//! held. Both were on the request's path: the API thread made them before it could validate.
//!
//! So after each document this thread keeps looking at its queue for a short while (the API's
//! busy-poll time, `host.api_busy_poll_us`) before it sleeps. A client that sends one large
//! vCon after another finds it awake, and handing it a document is a push onto a channel, with
//! no system call on the API thread. Alternated with the blocking pool on one machine
//! (`cargo xtask bench api`, one client posting cat1), the p50 went from 391–447 µs to
//! 383–398 µs and the rate from 1,948–2,194 to 2,085–2,189 a second (docs/benchmarks.md).
//!
//! Between looks it yields its core to the OS (`sched_yield`), unlike the API thread's
//! busy-poll: a thread woken on this core (the client reading its answer, a chain worker, the
//! checkpoint thread) must get it at once. Looking with a bare spin-loop hint instead, the
//! woken client sometimes waited out the stager's time slice, and the p99 of those runs rose
//! from 1.3–1.9 ms to 2.1–3.4 ms. The cost is bounded like the busy-poll's: at most the poll
//! time of a core that others may take, after each large document, and nothing while none come.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::broker::{Broker, StagedDocument};

/// One document to stage, and where its outcome goes.
struct Job {
    json: Bytes,
    done: oneshot::Sender<Option<StagedDocument>>,
}

/// The stager thread. Dropped, it waits for the thread to finish its document and end, so the
/// broker it holds is released before the API server reports that it stopped.
#[derive(Debug)]
pub struct Stager {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Stager {
    /// Starts the thread for `broker`, polling for `spin` after each document
    /// ([`Duration::ZERO`]: it sleeps at once).
    pub fn start(broker: Arc<dyn Broker>, spin: Duration) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("vcon-api-stager".into())
            .spawn(move || run(&*broker, &queue, spin))?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands `json` to the stager thread at once (the write starts while the caller goes on to
    /// validate it); the future answers the staged document, or `None` when the broker does not
    /// stage it, its write failed (the ingest then writes it and reports the error), or the
    /// thread is gone.
    pub fn stage(&self, json: Bytes) -> impl Future<Output = Option<StagedDocument>> + Send {
        let (done, outcome) = oneshot::channel();
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(Job { json, done }).is_ok());
        async move {
            if !sent {
                return None;
            }
            outcome.await.ok().flatten()
        }
    }
}

impl Drop for Stager {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has answered what it holds.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the API's document stager thread panicked");
            }
        }
    }
}

/// The thread: each job in turn, polling the queue for `spin` after each before it sleeps.
fn run(broker: &dyn Broker, queue: &Receiver<Job>, spin: Duration) {
    let mut last_job: Option<Instant> = None;
    loop {
        let job = match last_job {
            Some(at) if at.elapsed() < spin => match queue.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Empty) => {
                    // The core to whoever wants it (see the module docs).
                    std::thread::yield_now();
                    continue;
                }
                Err(TryRecvError::Disconnected) => return,
            },
            // Asleep until a job comes, or every handle is gone.
            _ => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        // A write that fails or panics leaves the document to the ingest, which writes it
        // itself and reports what went wrong; the thread goes on.
        let staged = std::panic::catch_unwind(AssertUnwindSafe(|| {
            broker.stage_document(&job.json).ok().flatten()
        }))
        .ok()
        .flatten();
        if staged.is_some() {
            crate::metrics::global().documents_staged.inc();
        }
        // A receiver gone means the request was dropped: the staged document is given up.
        let _ = job.done.send(staged);
        last_job = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::SqliteBroker;

    fn broker(dir: &tempfile::TempDir) -> Arc<dyn Broker> {
        Arc::new(SqliteBroker::open_for_run(&dir.path().join("broker.sqlite")).unwrap())
    }

    fn large_document() -> Bytes {
        Bytes::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(100 << 10)))
    }

    #[tokio::test]
    async fn stages_while_polling_and_after_sleeping() {
        let dir = tempfile::tempdir().unwrap();
        let stager = Stager::start(broker(&dir), Duration::from_millis(5)).unwrap();
        // The first job wakes a sleeping thread, the second finds it polling, the third
        // finds it asleep again.
        assert!(stager.stage(large_document()).await.is_some());
        assert!(stager.stage(large_document()).await.is_some());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(stager.stage(large_document()).await.is_some());
        // A small document stays in its row: nothing to stage.
        assert!(stager.stage(Bytes::from_static(b"{}")).await.is_none());
    }

    #[tokio::test]
    async fn dropping_it_ends_the_thread_and_releases_the_broker() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(&dir);
        let stager = Stager::start(Arc::clone(&broker), Duration::from_secs(60)).unwrap();
        assert!(stager.stage(large_document()).await.is_some());
        assert_eq!(Arc::strong_count(&broker), 2, "the thread holds the broker");
        // Polling for a minute, yet the drop ends it at once.
        let started = Instant::now();
        drop(stager);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            Arc::strong_count(&broker),
            1,
            "the thread let go of the broker"
        );
    }
}
