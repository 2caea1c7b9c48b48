//! Busy-polling after each answer: the API thread keeps polling its sockets for a short while
//! (`host.api_busy_poll_us`; `0` turns it off) before it goes to sleep in `epoll_wait`.
//!
//! Why: a client that sends its next request as soon as it has read an answer (a loader, a
//! pipeline stage, `vcon-host ingest --url`) otherwise finds the API thread asleep, and waking
//! it (on a virtual machine, a halted vCPU) is slow: the floor row of `cargo xtask bench api`
//! (one client's round trip to a route that does nothing) had a p50 of 26–118 µs without
//! polling and 16–66 µs with it on the development machine. The `POST` rows with and without it
//! are in docs/benchmarks.md.
//!
//! How: a task that, once told a request was answered, yields to the scheduler until the spin
//! time has passed since the last answer. A runtime with a yielded task polls its I/O driver without
//! blocking, so a request that arrives meanwhile is read at once, on a thread that is still
//! awake. Each turn also yields the thread to the OS, so a chain worker or the checkpoint thread
//! that wants the core gets it: `cargo xtask bench api` with one client went from 2,058 to 3,412
//! `POST`s a second end to end (chain workers storing beside the API) with that yield, and the
//! API-only rows stayed the same. The cost is bounded: at most the spin time of one core after
//! each answer, and nothing while no requests come.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Wakes the polling task after each answer; shared by the router (which reports answers) and
/// the task (see the module docs).
#[derive(Debug)]
pub struct BusyPoll {
    spin: Duration,
    answered: Notify,
    last_answer: Mutex<Option<Instant>>,
}

impl BusyPoll {
    /// Polls for `spin` after each answer; [`Duration::ZERO`] turns polling off (the thread
    /// sleeps as soon as it has nothing to do).
    pub fn new(spin: Duration) -> Self {
        Self {
            spin,
            answered: Notify::new(),
            last_answer: Mutex::new(None),
        }
    }

    /// Tells the polling task a request was just answered: the next one may be on its way.
    pub fn answered(&self) {
        *self.last() = Some(Instant::now());
        self.answered.notify_one();
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.last_answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The polling task: runs until the runtime stops or the task is aborted; returns at once
    /// when polling is off.
    pub async fn run(&self) {
        if self.spin.is_zero() {
            return;
        }
        loop {
            self.answered.notified().await;
            while self.last().is_some_and(|at| at.elapsed() < self.spin) {
                // The core goes to any other thread that wants it (a chain worker, the broker's
                // checkpoint): polling only uses time nobody else would.
                std::thread::yield_now();
                tokio::task::yield_now().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn polling_off_ends_the_task_at_once() {
        let off = BusyPoll::new(Duration::ZERO);
        off.answered();
        tokio::time::timeout(Duration::from_secs(5), off.run())
            .await
            .expect("with polling off the task must not wait for answers");
    }
}
