//! The document stager: another thread puts a large posted document in its stored form and
//! writes it ahead of its ingest ([`Broker::stage_document`]) while the API thread validates it.
//!
//! Why a thread of the API's rather than the runtime's blocking pool, which did this before: each
//! `spawn_blocking` woke a pool thread that had gone to sleep, and on a virtual machine waking a
//! thread on an idle core is a system call that sends an inter-processor interrupt. `perf record`
//! of one client posting cat1 put about 3 % of the API thread in that wake-up, and `perf trace`
//! showed a second system call now and then, when the woken thread found the pool's lock still
//! held. Both were on the request's path: the API thread made them before it could validate.
//!
//! So it runs on a [`PollThread`], which keeps looking for the next document for a short while
//! (the API's busy-poll time, `host.api_busy_poll_us`) before it sleeps: a client that sends one
//! large vCon after another finds it awake, and handing it a document is a push onto a channel,
//! with no system call on the API thread. Alternated with the blocking pool on one machine
//! (`cargo xtask bench api`, one client posting cat1), the p50 went from 391–447 µs to
//! 383–398 µs and the rate from 1,948–2,194 to 2,085–2,189 a second (docs/benchmarks.md).
//!
//! `run` gives it the same thread as the group commit's writer ([`Stager::on`]), not one of its
//! own. A document's staging and its batch's write come one after the other anyway (the write
//! waits for the validation that the staging overlaps), and with two threads each polled for a
//! while after its job: with the client and the API thread, four threads wanted two cores while
//! the client sent its next request, and the client waited its turn. One client posting cat1,
//! four alternated pairs on one machine: 2,356–2,557 requests a second on one shared thread
//! (4.3–5.7 % of the time in requests over 1 ms) against 1,303–2,178 on two (7.3–12.8 %)
//! (docs/benchmarks.md).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::poll_thread::PollThread;
use crate::broker::{Broker, StagedDocument};
use crate::stored_form::stored_form;

/// The stager's thread, and the broker it writes documents to. Dropped as the thread's last
/// owner, it waits for the thread to finish its jobs and end.
#[derive(Debug)]
pub struct Stager {
    broker: Arc<dyn Broker>,
    thread: Arc<PollThread>,
}

impl Stager {
    /// Starts a thread of its own for `broker`, polling for `spin` after each document
    /// ([`Duration::ZERO`]: it sleeps at once).
    pub fn start(broker: Arc<dyn Broker>, spin: Duration) -> std::io::Result<Self> {
        let thread = PollThread::start("vcon-api-stager", spin, broker.background_work())?;
        Ok(Self::on(broker, Arc::new(thread)))
    }

    /// A stager whose documents are written on `thread`, which other work shares: `run` gives
    /// it the group commit's writer (see the module docs).
    pub fn on(broker: Arc<dyn Broker>, thread: Arc<PollThread>) -> Self {
        Self { broker, thread }
    }

    /// Hands `json` to the stager thread at once: there it is put in its stored form
    /// ([`stored_form`]) and written, while the caller goes on to validate it. The future
    /// answers both, or `None` when the thread is gone or panicked (the caller then does the
    /// work itself). A write that fails or that the broker does not do leaves
    /// [`Staging::staged`] `None`: the ingest then writes the document and reports any error.
    pub fn stage(
        &self,
        json: Bytes,
        keep_whitespace: bool,
    ) -> impl Future<Output = Option<Staging>> + Send {
        let (done, outcome) = oneshot::channel();
        let broker = Arc::clone(&self.broker);
        let sent = self
            .thread
            .run(move || {
                let stored = stored_form(json, keep_whitespace);
                // A write that fails leaves the document to the ingest, which writes it itself
                // and reports what went wrong; one that panics drops `done`, which the caller
                // takes the same way (the thread catches the panic and goes on).
                let staged = broker.stage_document(&stored).ok().flatten();
                if staged.is_some() {
                    crate::metrics::global().documents_staged.inc();
                }
                // A receiver gone means the request was dropped: the staged document is given
                // up.
                let _ = done.send(Staging { stored, staged });
            })
            .is_ok();
        async move {
            if !sent {
                return None;
            }
            outcome.await.ok()
        }
    }
}

/// What the stager did with a document.
#[derive(Debug)]
pub struct Staging {
    /// The document in its stored form ([`stored_form`]).
    pub stored: Bytes,
    /// `stored`, already written by the broker; `None` when it was not.
    pub staged: Option<StagedDocument>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::SqliteBroker;
    use std::time::Instant;

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
        let staged = |json| async { stager.stage(json, false).await.unwrap().staged };
        assert!(staged(large_document()).await.is_some());
        assert!(staged(large_document()).await.is_some());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(staged(large_document()).await.is_some());
        // A small document stays in its row: nothing to stage.
        assert!(staged(Bytes::from_static(b"{}")).await.is_none());
    }

    #[tokio::test]
    async fn dropping_it_ends_the_thread_and_releases_the_broker() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(&dir);
        let stager = Stager::start(Arc::clone(&broker), Duration::from_secs(60)).unwrap();
        assert!(stager
            .stage(large_document(), false)
            .await
            .unwrap()
            .staged
            .is_some());
        // Polling for a minute, yet the drop ends it at once (and only then is the last job,
        // which held a clone of the broker, surely gone).
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
