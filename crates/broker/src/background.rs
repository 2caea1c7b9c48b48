//! A signal that a broker's own background thread is working now: the embedded broker's
//! checkpoint thread, copying the WAL back and fsyncing.
//!
//! Why: the API keeps threads polling for the next request instead of sleeping (the busy-poll,
//! the writer and the stager), and on a two-core machine those polls hold the cores the
//! checkpoint thread and the load's client need. `perf sched timehist` of one client posting
//! 5 KB vCons showed the client, once woken, waiting 2–5 ms on the checkpoint thread's core
//! while the other core was the API thread's busy-poll. Pollers that see the signal sleep
//! instead of polling until the round is over, so the client and the checkpoint thread each
//! get a core; the rates with and without are in docs/benchmarks.md ("Standing aside for the
//! checkpoint thread").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether a broker's background thread is working now. Cheap to clone and to read (one relaxed
/// atomic load), so a polling loop can look at it on every turn. The default is never set: a
/// broker without a background thread of its own (Redis, a client handle).
#[derive(Debug, Clone, Default)]
pub struct BackgroundWork(Arc<AtomicBool>);

impl BackgroundWork {
    /// Whether the background thread is working now. A hint, not a lock: it may change as soon
    /// as it is read.
    pub fn running(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Marks the work running until the guard is dropped, also if the work panics. For the
    /// thread that does the work (and for tests of the threads that stand aside for it).
    pub fn enter(&self) -> Running<'_> {
        self.0.store(true, Ordering::Relaxed);
        Running(self)
    }
}

/// Marks a [`BackgroundWork`] running while it lives.
#[derive(Debug)]
#[must_use = "the work is marked running only while the guard lives"]
pub struct Running<'a>(&'a BackgroundWork);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        (self.0).0.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_is_running_while_its_guard_lives_and_is_seen_through_every_clone() {
        let work = BackgroundWork::default();
        let seen = work.clone();
        assert!(!seen.running(), "never running until entered");
        let guard = work.enter();
        assert!(seen.running());
        drop(guard);
        assert!(!seen.running());
    }

    #[test]
    fn work_that_panics_is_not_left_running() {
        let work = BackgroundWork::default();
        let inside = work.clone();
        let outcome = std::panic::catch_unwind(move || {
            let _running = inside.enter();
            panic!("a checkpoint round failed");
        });
        assert!(outcome.is_err());
        assert!(!work.running(), "the guard's drop ran while unwinding");
    }
}
