//! A small, bounded pool of SQLite connections.
//!
//! A `rusqlite::Connection` may move between threads but not be shared, and the host calls one
//! storage from many threads. The storage keeps two pools: one write connection (SQLite allows
//! one writer per database anyway; queueing writers here, rather than letting them race for
//! SQLite's lock, keeps `SQLITE_BUSY` for contention from *other* processes) and `pool_size`
//! read connections, which in WAL mode read in parallel with each other and with the writer.
//!
//! A checkout waits at most `busy_timeout_ms` for a free connection, then answers
//! `Unavailable`, so a saturated storage pushes back on the host instead of queueing forever.
//! No crate is used for this (r2d2 and its SQLite adapter would pin rusqlite's version to
//! theirs) and it is forty lines.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::Error;

/// A fixed set of connections handed out one call at a time.
#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Connection>>,
    freed: Condvar,
    wait: Duration,
    role: &'static str,
    path: PathBuf,
}

impl Pool {
    /// A pool of `connections` for `role` ("read" or "write"); a checkout waits up to `wait`.
    pub(crate) fn new(
        connections: Vec<Connection>,
        wait: Duration,
        role: &'static str,
        path: PathBuf,
    ) -> Self {
        Self {
            idle: Mutex::new(connections),
            freed: Condvar::new(),
            wait,
            role,
            path,
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // Nothing panics while the list is locked (push and pop only), so a poisoned lock
        // still guards a consistent list.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a connection, waiting for one to be returned if all are in use.
    pub(crate) fn get(&self) -> Result<Pooled<'_>, Error> {
        let deadline = Instant::now() + self.wait;
        let mut idle = self.idle();
        loop {
            if let Some(conn) = idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::PoolTimeout {
                    role: self.role,
                    path: self.path.clone(),
                    waited: self.wait,
                });
            }
            idle = self
                .freed
                .wait_timeout(idle, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn put_back(&self, conn: Connection) {
        self.idle().push(conn);
        self.freed.notify_one();
    }
}

/// A connection on loan from a [`Pool`], returned when dropped (also when a panic unwinds
/// through the call, which the SDK turns into an error).
#[derive(Debug)]
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Deref for Pooled<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Only `drop` takes the connection out.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A call that failed (or panicked) inside an explicit transaction must not hand the
            // next caller a connection still in it.
            if !conn.is_autocommit() {
                if let Err(err) = conn.execute_batch("ROLLBACK") {
                    tracing::warn!("rolling back an abandoned transaction failed: {err}");
                }
            }
            self.pool.put_back(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_then_times_out_and_rolls_back_abandoned_transactions() {
        let conn = Connection::open_in_memory().unwrap();
        let pool = Pool::new(vec![conn], Duration::from_millis(50), "write", "/x".into());
        {
            let held = pool.get().unwrap();
            held.execute_batch("BEGIN").unwrap();
            let started = Instant::now();
            let err = pool.get().unwrap_err();
            assert!(started.elapsed() >= Duration::from_millis(50));
            assert!(matches!(err, Error::PoolTimeout { role: "write", .. }));
            assert!(err.to_string().contains("busy_timeout_ms"), "{err}");
        }
        let again = pool.get().unwrap();
        assert!(again.is_autocommit());
    }

    #[test]
    fn a_waiting_checkout_gets_the_returned_connection() {
        let pool = Pool::new(
            vec![Connection::open_in_memory().unwrap()],
            Duration::from_secs(10),
            "read",
            "/x".into(),
        );
        std::thread::scope(|scope| {
            let held = pool.get().unwrap();
            let waiter = scope.spawn(|| pool.get().map(|_| ()).is_ok());
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
            assert!(waiter.join().unwrap());
        });
    }
}
