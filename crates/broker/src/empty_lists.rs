//! Lists the embedded broker found empty, remembered so an idle worker's poll costs no
//! transaction.
//!
//! Why: an idle chain worker asks for a claim every 10 ms, and each claim is a write
//! transaction on the broker's one connection (its mutex, `BEGIN IMMEDIATE`, the WAL's locks).
//! On a busy machine a worker can lose its core while it holds that connection, and every
//! `POST /vcon` then waits for it to be scheduled again: `strace` of one-client cat1 posts,
//! with two idle workers beside the API, showed the API thread blocked on the connection's
//! mutex for 8 ms while a worker's empty claim waited for a core (docs/benchmarks.md).
//!
//! How: every commit of this handle counts as a possible push ([`EmptyLists::wrote`], bumped
//! while the connection is still held), and a claim that found nothing records the count with
//! its lists. A later claim of the same lists answers "nothing" without the database while no
//! commit came since and the record is younger than [`RECHECK`]: another process (`vcon-host
//! ingest` into the same file) pushes without this handle's count, and is seen within that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a list found empty is taken to stay empty while this handle commits nothing: the
/// longest another process's push waits to be claimed, beyond the worker's own poll.
pub(crate) const RECHECK: Duration = Duration::from_millis(100);

/// At most this many sets of lists are remembered (one per chain's workers, in practice); past
/// it the oldest record is dropped, which only costs its next claim a transaction.
const REMEMBERED: usize = 64;

/// The record: which lists were found empty, and when.
#[derive(Debug, Default)]
pub(crate) struct EmptyLists {
    /// Commits of this handle so far.
    writes: AtomicU64,
    found: Mutex<Vec<FoundEmpty>>,
}

#[derive(Debug)]
struct FoundEmpty {
    lists: Vec<String>,
    /// [`EmptyLists::writes`] when they were found empty.
    writes: u64,
    at: Instant,
}

impl EmptyLists {
    /// Counts a commit of this handle; called while the connection is still held, so no other
    /// transaction of this handle comes between the commit and the count.
    pub(crate) fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// Commits so far; read by a claim while it holds the connection, so no commit of this
    /// handle comes between the read and the claim's look at the lists.
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// Whether `lists` were found empty after this handle's last commit, less than [`RECHECK`]
    /// ago.
    pub(crate) fn still_empty(&self, lists: &[String]) -> bool {
        let writes = self.writes();
        self.found()
            .iter()
            .any(|f| f.lists == lists && f.writes == writes && f.at.elapsed() < RECHECK)
    }

    /// Records that a claim of `lists` found nothing when this handle had made `writes`
    /// commits.
    pub(crate) fn found_empty(&self, lists: &[String], writes: u64) {
        let mut found = self.found();
        found.retain(|f| f.lists != lists);
        if found.len() >= REMEMBERED {
            found.remove(0);
        }
        found.push(FoundEmpty {
            lists: lists.to_vec(),
            writes,
            at: Instant::now(),
        });
    }

    fn found(&self) -> std::sync::MutexGuard<'_, Vec<FoundEmpty>> {
        self.found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    #[test]
    fn a_commit_after_the_look_forgets_it() {
        let empty = EmptyLists::default();
        empty.found_empty(&lists(&["a"]), empty.writes());
        assert!(empty.still_empty(&lists(&["a"])));
        assert!(
            !empty.still_empty(&lists(&["b"])),
            "another set was never looked at"
        );
        empty.wrote();
        assert!(!empty.still_empty(&lists(&["a"])));
    }

    #[test]
    fn a_look_is_trusted_for_recheck_only() {
        let empty = EmptyLists::default();
        empty.found_empty(&lists(&["a"]), empty.writes());
        std::thread::sleep(RECHECK + Duration::from_millis(10));
        assert!(!empty.still_empty(&lists(&["a"])));
    }

    #[test]
    fn the_oldest_record_goes_first() {
        let empty = EmptyLists::default();
        for i in 0..=REMEMBERED {
            empty.found_empty(&lists(&[&i.to_string()]), 0);
        }
        assert!(!empty.still_empty(&lists(&["0"])));
        assert!(empty.still_empty(&lists(&["1"])));
        assert!(empty.still_empty(&lists(&[&REMEMBERED.to_string()])));
    }
}
