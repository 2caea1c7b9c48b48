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
//! awake. The cost is bounded: at most the spin time of one core after each answer, and nothing
//! while no requests come.
//!
//! The thread keeps its core while it polls rather than also yielding it to the OS at each turn
//! (`sched_yield`), as it once did so a chain worker or the checkpoint thread could have it: a
//! thread that yielded is still runnable, so when the request comes no wake-up gives it back the
//! core, and it waits out whatever took it (a `sched_yield` of 4.4 ms in `perf trace` of
//! one-client cat1 posts). Alternated with the yielding build on one machine: one client's cat1
//! posts 520–1,194 against 343–1,179 a second (five of six pairs faster), its 5 KB posts
//! 4,006–5,365 against 2,529–4,606, and the end-to-end 5 KB rows (chain workers storing beside
//! the API) the same, 1,598–2,043 against 1,510–2,147 (docs/benchmarks.md). A worker that wants
//! the core waits at most the spin time, or takes the other one.
//!
//! While the broker's checkpoint thread works ([`BackgroundWork`]) the task stops polling and
//! the thread sleeps in `epoll_wait` as it would when idle: on two cores, the busy-poll on one
//! and the checkpoint thread on the other left a woken client no core, and it waited 2–5 ms
//! (`perf sched timehist`). Standing aside for the rounds, alternated on one machine: one
//! client's cat1 posts 1,529–1,798 a second against 1,121–1,523, eight clients' 5 KB posts
//! 10,605–13,710 against 8,687–12,690, one client's 5 KB posts faster in 8 of 11 pairs, with a
//! shorter tail in all (docs/benchmarks.md).
//!
//! The spin time counts from when the handler answers, before hyper writes the answer, and the
//! default (1 ms) leaves room for the write and for the client's turn. At 150 µs (the default
//! before), `perf trace` of one client posting cat1 (270 KB each way) showed the API thread
//! asleep in `epoll_wait` 60 µs after each answer's write: the write took 60–90 µs of the
//! window, and reading the answer and sending the next request took the client longer than the
//! rest. Alternated on one machine, one-client cat1 posts 1,468–1,622 a second with 1 ms
//! against 1,330–1,409 with 150 µs, and 1,531–1,671 against 1,365–1,439 with 400 µs; 3 ms was
//! no faster than 1 ms; 5 KB posts and the end-to-end rows were the same
//! (docs/benchmarks.md).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use vcon_broker::BackgroundWork;

/// Wakes the polling task after each answer; shared by the router (which reports answers) and
/// the task (see the module docs).
#[derive(Debug)]
pub struct BusyPoll {
    spin: Duration,
    /// The broker's background work, which the task stops polling for (see the module docs).
    stand_aside: BackgroundWork,
    answered: Notify,
    last_answer: Mutex<Option<Instant>>,
}

impl BusyPoll {
    /// Polls for `spin` after each answer, except while `stand_aside` runs;
    /// [`Duration::ZERO`] turns polling off (the thread sleeps as soon as it has nothing to do).
    pub fn new(spin: Duration, stand_aside: BackgroundWork) -> Self {
        Self {
            spin,
            stand_aside,
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

    /// Whether the task polls now: within the spin time of the last answer, and no background
    /// work to stand aside for.
    fn polling(&self) -> bool {
        self.last().is_some_and(|at| at.elapsed() < self.spin) && !self.stand_aside.running()
    }

    /// The polling task: runs until the runtime stops or the task is aborted; returns at once
    /// when polling is off.
    pub async fn run(&self) {
        if self.spin.is_zero() {
            return;
        }
        loop {
            self.answered.notified().await;
            while self.polling() {
                // Only the runtime's turn: the thread keeps its core (see the module docs).
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
        let off = BusyPoll::new(Duration::ZERO, BackgroundWork::default());
        off.answered();
        tokio::time::timeout(Duration::from_secs(5), off.run())
            .await
            .expect("with polling off the task must not wait for answers");
    }

    #[test]
    fn it_polls_after_an_answer_except_while_the_broker_works_in_the_background() {
        let work = BackgroundWork::default();
        let poll = BusyPoll::new(Duration::from_secs(60), work.clone());
        assert!(!poll.polling(), "nothing answered yet");
        poll.answered();
        assert!(poll.polling());
        let round = work.enter();
        assert!(!poll.polling(), "it stands aside while the round works");
        drop(round);
        assert!(poll.polling(), "and polls again once the round is over");
    }
}
