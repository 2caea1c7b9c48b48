//! The connection pool: r2d2 over this plugin's own connection manager, and the one place that
//! runs a command on a pooled connection ([`Pool::run`]).
//!
//! Why a manager of our own rather than the one the `redis` crate gives r2d2: that one connects
//! without a time-out (a blackholed address would hold a thread for minutes) and sets no
//! command time-out. Ours connects within `connect_timeout`, gives every command
//! `command_timeout`, names the connection (`CLIENT LIST` shows `vcon-host-redis-storage`), and
//! drops a connection after any I/O error (a timed-out answer still in flight would otherwise be
//! read as the answer to the next command).
//!
//! Connections are made on demand (none at start beyond the probe at open) and kept. They are
//! not `PING`ed before each use (that would double the round trips); instead:
//!
//! - a command that finds its connection dropped (Redis restarted, or closed an idle client) is
//!   tried once more, on another connection, when the connection had worked before: every
//!   command this plugin sends is idempotent, so a second run changes nothing (only the answer
//!   of a `DEL` that did run before its answer was lost says `false` the second time);
//! - such a failure bumps a generation number, and a connection older than the latest failure is
//!   `PING`ed once before it is used again, so after a restart the stale connections are
//!   weeded out in one call instead of failing one call each;
//! - while the latest attempt to connect has failed, a call that finds no open connection
//!   answers at once with that failure (retryable) instead of waiting `connect_timeout`: the
//!   pool keeps trying in the background (r2d2's back-off, at most `connect_timeout / 2` apart)
//!   and the storage works again as soon as Redis is back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use plugin_sdk::ErrorKind;

use crate::error::{self, Error};
use crate::options::Settings;

/// The name every connection gives itself (`CLIENT SETNAME`), so an operator can tell this
/// storage's connections apart in `CLIENT LIST`.
pub const CLIENT_NAME: &str = "vcon-host-redis-storage";

/// How often a call waiting for a new connection looks whether the attempt has failed.
const POLL: Duration = Duration::from_millis(25);

/// One pooled connection and what the pool knows about it.
pub(crate) struct Conn {
    inner: redis::Connection,
    /// The failure generation this connection is known to have survived.
    generation: u64,
    /// Commands run successfully on it: a connection that never worked is not retried.
    uses: u64,
    /// Set after an error that leaves the connection unusable; the pool then drops it.
    broken: bool,
}

/// The latest failure to connect, shared by the manager (which records it) and the calls.
#[derive(Debug, Default)]
struct Health {
    /// Bumped when a pooled connection is found dropped.
    generation: AtomicU64,
    /// Set when an attempt to connect fails, cleared when one succeeds.
    failure: Mutex<Option<Failure>>,
}

/// A failed attempt to connect, as the calls report it.
#[derive(Debug, Clone)]
struct Failure {
    kind: ErrorKind,
    message: String,
}

impl Health {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records a failed attempt; answers whether Redis was thought reachable until now.
    fn failed(&self, err: &redis::RedisError) -> bool {
        let failure = Failure {
            kind: error::kind_of(err),
            message: error::explain(err),
        };
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(failure)
            .is_none()
    }

    /// Records a successful attempt; answers whether Redis was thought unreachable until now.
    fn succeeded(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some()
    }
}

/// How to make a connection, shared by the pool's manager and the probe at open.
#[derive(Clone)]
struct Connector {
    client: redis::Client,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl Connector {
    /// A new connection: connected (and authenticated, and on its database) within
    /// `connect_timeout`, with `command_timeout` on every read and write, and named.
    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let mut conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(Some(self.command_timeout))?;
        conn.set_write_timeout(Some(self.command_timeout))?;
        match redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(CLIENT_NAME)
            .query::<()>(&mut conn)
        {
            // A server that refuses CLIENT (renamed by its operator, or not granted by an ACL)
            // works as well without the name; only a failure of the connection matters.
            // A server that wants a password and was given none says so here first.
            Err(err) if error::spoils_connection(&err) || err.code() == Some("NOAUTH") => Err(err),
            _ => Ok(conn),
        }
    }
}

/// The r2d2 manager of this plugin's connections.
struct Manager {
    connector: Connector,
    health: Arc<Health>,
    /// The server, password hidden, for the log lines.
    target: String,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<Conn, redis::RedisError> {
        match self.connector.connect() {
            Ok(inner) => {
                if self.health.succeeded() {
                    tracing::info!(target = %self.target, "reconnected to Redis");
                }
                Ok(Conn {
                    inner,
                    generation: self.health.generation(),
                    uses: 0,
                    broken: false,
                })
            }
            Err(err) => {
                if self.health.failed(&err) {
                    tracing::warn!(
                        target = %self.target,
                        "cannot connect to Redis: {}; the storage keeps trying",
                        error::explain(&err)
                    );
                }
                Err(err)
            }
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query::<()>(&mut conn.inner)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || !redis::ConnectionLike::is_open(&conn.inner)
    }
}

/// The pool of one storage.
pub(crate) struct Pool {
    pool: r2d2::Pool<Manager>,
    connector: Connector,
    health: Arc<Health>,
    /// The server, password hidden.
    target: String,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.state();
        f.debug_struct("Pool")
            .field("target", &self.target)
            .field("max_size", &self.pool.max_size())
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .finish_non_exhaustive()
    }
}

/// How many connections a pool has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolState {
    /// The most it opens.
    pub(crate) max_size: u32,
    /// Open now.
    pub(crate) connections: u32,
    /// Open and not in use.
    pub(crate) idle: u32,
}

impl Pool {
    /// A pool for `settings`, with no connection yet.
    pub(crate) fn new(settings: &Settings) -> Result<Self, Error> {
        let client = redis::Client::open(settings.connection.clone()).map_err(|err| {
            Error::Options(format!(
                "invalid option redis_url: {}",
                error::describe(&err)
            ))
        })?;
        let connector = Connector {
            client,
            connect_timeout: settings.connect_timeout,
            command_timeout: settings.command_timeout,
        };
        let health = Arc::new(Health::default());
        let manager = Manager {
            connector: connector.clone(),
            health: Arc::clone(&health),
            target: settings.target.clone(),
        };
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size)
            // On demand: no connection is made until a call needs one.
            .min_idle(Some(0))
            // No PING per call; see the module's documentation for how dead connections go.
            .test_on_check_out(false)
            .connection_timeout(settings.connect_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            // The manager logs the first failure of an outage and the recovery; r2d2's own
            // handler would log every retry through the `log` crate, which goes nowhere here.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            connector,
            health,
            target: settings.target.clone(),
            connect_timeout: settings.connect_timeout,
        })
    }

    /// Connects once, outside the pool, and `PING`s: at open, so a wrong address, password or
    /// database number is reported at start-up with its reason, at once.
    pub(crate) fn probe(&self) -> Result<(), Error> {
        let mut conn = self.connector.connect().map_err(|source| Error::Connect {
            target: self.target.clone(),
            source,
        })?;
        redis::cmd("PING")
            .query::<()>(&mut conn)
            .map_err(|source| Error::Connect {
                target: self.target.clone(),
                source,
            })
    }

    /// How many connections the pool has.
    pub(crate) fn state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            max_size: self.pool.max_size(),
            connections: state.connections,
            idle: state.idle_connections,
        }
    }

    /// Runs `op` on a pooled connection. A connection found dropped is replaced and `op` run
    /// once more (see the module's documentation); any other failure is answered as the error
    /// of `action` (called only then, to build the message).
    pub(crate) fn run<T>(
        &self,
        action: impl Fn() -> String,
        mut op: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let mut retried = false;
        loop {
            let mut conn = self.checkout()?;
            match op(&mut conn.inner) {
                Ok(value) => {
                    conn.uses += 1;
                    return Ok(value);
                }
                Err(err) => {
                    if error::spoils_connection(&err) {
                        conn.broken = true;
                    }
                    if !retried && conn.uses > 0 && error::is_dropped_connection(&err) {
                        // Redis restarted or closed the connection: older connections are
                        // suspect too, and the command is tried once more on a good one.
                        self.health.generation.fetch_add(1, Ordering::AcqRel);
                        tracing::debug!(
                            target = %self.target,
                            "a pooled connection was dropped ({}); retrying on another",
                            error::describe(&err)
                        );
                        retried = true;
                        continue;
                    }
                    return Err(Error::command(action(), &self.target, err));
                }
            }
        }
    }

    /// A connection from the pool, known good since the latest dropped connection.
    fn checkout(&self) -> Result<r2d2::PooledConnection<Manager>, Error> {
        let started = Instant::now();
        let deadline = started + self.connect_timeout;
        loop {
            let conn = match self.pool.try_get() {
                Some(conn) => conn,
                None => {
                    if let Some(failure) = self.health.failure() {
                        // The latest attempt to connect failed and none has succeeded since:
                        // answer now; the pool keeps trying in the background.
                        return Err(Error::Unreachable {
                            target: self.target.clone(),
                            kind: failure.kind,
                            failure: failure.message,
                        });
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::PoolTimeout {
                            target: self.target.clone(),
                            waited: now - started,
                        });
                    }
                    // Short waits, so that a failed attempt (recorded above) ends the wait at
                    // once instead of after `connect_timeout`.
                    match self.pool.get_timeout((deadline - now).min(POLL)) {
                        Ok(conn) => conn,
                        Err(_) => continue,
                    }
                }
            };
            if let Some(conn) = self.vetted(conn) {
                return Ok(conn);
            }
        }
    }

    /// `conn`, or `None` (and the connection dropped) when it is older than the latest dropped
    /// connection and does not answer a `PING`.
    fn vetted(
        &self,
        mut conn: r2d2::PooledConnection<Manager>,
    ) -> Option<r2d2::PooledConnection<Manager>> {
        let generation = self.health.generation();
        if conn.generation >= generation {
            return Some(conn);
        }
        match redis::cmd("PING").query::<()>(&mut conn.inner) {
            Ok(()) => {
                conn.generation = generation;
                Some(conn)
            }
            Err(_) => {
                conn.broken = true;
                None
            }
        }
    }
}
