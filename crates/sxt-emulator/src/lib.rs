//! A local emulator of Space and Time's network API, for testing the `spaceandtime` storage
//! plugin on a machine that cannot reach the service. A test fixture: never shipped.
//!
//! It serves, on two loopback ports, what the plugin uses:
//!
//! - the Gateway ([`Emulator::auth_url`]): `POST /auth/apikey` with header `apikey: KEY`
//!   answers `{"accessToken", "accessTokenExpires" (epoch ms), "refreshToken": "",
//!   "refreshTokenExpires": 0}`; an unknown key is a 401;
//! - the network API ([`Emulator::api_url`]): `POST /v1/sql` with `Authorization: Bearer TOKEN`
//!   and `{"sqlText", "biscuits": [...], "validate"}`; a missing, unknown or expired token is a
//!   401 whose body says "JWT authorization failed". `GET /v1/auth/validtoken` too.
//!
//! Statements are gated and executed as the `sql` module describes: biscuits are verified with
//! `biscuit-auth` against the public key each table was created with (wrong key or missing
//! capability → 403 "biscuit authorization failed"), and SQL runs for real on an embedded
//! SQLite database.
//!
//! Faithfulness: the request and answer shapes, the capability facts, the VARCHAR limit and the
//! Ignite duplicate-key message come from Space and Time's SDK source and documentation
//! (`shared/spaceandtime-research.md`). The exact error bodies, the status of a duplicate key
//! (400 here), the status of an unknown table (404 here) and the authorizer's policy are this
//! emulator's choices: the real service's are not published.
//!
//! Tests drive it with [`Emulator::set_token_ttl`] (tokens that expire mid-run),
//! [`Emulator::revoke_tokens`], [`Emulator::fail_next`] and [`Emulator::delay_next`] (scripted
//! faults), and read what happened with [`Emulator::stats`] and [`Emulator::query`].

mod biscuits;
mod keys;
mod server;
mod sql;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use keys::{mint, TableKeys};
pub use sql::VARCHAR_MAX;

use server::{lock, Fault, Running, State};

/// The API key a default emulator accepts.
pub const API_KEY: &str = "sxt_emulator_test_key";

/// The access-token lifetime of the real service (25 minutes), the emulator's default.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(1500);

/// A running emulator. Dropping it stops both servers.
#[derive(Debug)]
pub struct Emulator {
    state: Arc<State>,
    gateway: Running,
    network: Running,
}

/// Counters of what clients did, for assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// `POST /auth/apikey` calls (successful or not).
    pub auth_calls: u64,
    /// `POST /v1/sql` calls (successful or not).
    pub sql_calls: u64,
    /// `POST /v1/sql` calls refused with 401 for a missing, unknown or expired token.
    pub token_refusals: u64,
}

impl Emulator {
    /// Starts an emulator accepting [`API_KEY`], with the real token lifetime.
    pub fn start() -> Result<Self, String> {
        Self::start_with(&[API_KEY], DEFAULT_TOKEN_TTL)
    }

    /// Starts an emulator accepting `api_keys`, issuing tokens that live `token_ttl`.
    pub fn start_with(api_keys: &[&str], token_ttl: Duration) -> Result<Self, String> {
        let state = Arc::new(State {
            api_keys: Mutex::new(api_keys.iter().map(|k| (*k).to_owned()).collect()),
            token_ttl: Mutex::new(token_ttl),
            tokens: Mutex::new(HashMap::new()),
            db: Mutex::new(sql::Db::new()?),
            faults: Mutex::new(VecDeque::new()),
            auth_calls: AtomicU64::new(0),
            sql_calls: AtomicU64::new(0),
            token_refusals: AtomicU64::new(0),
            statements: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let gateway = Running::start(&state, server::gateway)?;
        let network = Running::start(&state, server::network)?;
        Ok(Self {
            state,
            gateway,
            network,
        })
    }

    /// The network API's base URL (the plugin's `api_url`).
    pub fn api_url(&self) -> &str {
        &self.network.url
    }

    /// The Gateway's base URL (the plugin's `auth_url`).
    pub fn auth_url(&self) -> &str {
        &self.gateway.url
    }

    /// The lifetime of tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        *lock(&self.state.token_ttl) = ttl;
    }

    /// Invalidates every token issued so far, as a service restart or a revoked session would:
    /// clients see 401s until they authenticate again.
    pub fn revoke_tokens(&self) {
        lock(&self.state.tokens).clear();
    }

    /// The next `count` SQL requests (with a valid token) answer `status` without running.
    pub fn fail_next(&self, count: usize, status: u16) {
        let mut faults = lock(&self.state.faults);
        faults.extend(std::iter::repeat_n(Fault::Status(status), count));
    }

    /// The next `count` SQL requests wait `delay` before being handled.
    pub fn delay_next(&self, count: usize, delay: Duration) {
        let mut faults = lock(&self.state.faults);
        faults.extend(std::iter::repeat_n(Fault::Delay(delay), count));
    }

    /// Creates a schema directly (as an administrator would, with no request).
    pub fn create_schema(&self, name: &str) -> Result<(), String> {
        lock(&self.state.db)
            .create_schema(name, true)
            .map(|_| ())
            .map_err(|err| err.message)
    }

    /// Runs one statement with these biscuits, as a client with a valid token would.
    pub fn execute(&self, sql: &str, biscuits: &[String]) -> Result<serde_json::Value, String> {
        lock(&self.state.db)
            .run(sql, biscuits)
            .map_err(|err| format!("{}: {}", err.status, err.message))
    }

    /// Runs a query with no checks at all, to inspect what is stored.
    pub fn query(&self, sql: &str) -> Result<serde_json::Value, String> {
        lock(&self.state.db).inspect(sql).map_err(|err| err.message)
    }

    /// What clients did so far.
    pub fn stats(&self) -> Stats {
        Stats {
            auth_calls: self.state.auth_calls.load(Ordering::SeqCst),
            sql_calls: self.state.sql_calls.load(Ordering::SeqCst),
            token_refusals: self.state.token_refusals.load(Ordering::SeqCst),
        }
    }

    /// Every statement received so far, in order.
    pub fn statements(&self) -> Vec<String> {
        lock(&self.state.statements).clone()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.gateway.stop();
        self.network.stop();
    }
}
