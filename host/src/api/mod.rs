//! The HTTP API: the Python vCon Server's endpoints, paths, parameters, status codes and auth
//! header, served by `vcon-host run` beside the chain workers.
//!
//! - [`routes`] builds the router: every route answers with and without the root path
//!   (`/api`), as the Python server's do;
//! - [`auth`] checks `x-conserver-api-token` (and the per-list keys of `ingress_auth`) in
//!   constant time; with no token configured the API is open, which [`check_bind`] only allows
//!   on a loopback address;
//! - [`vcons`], [`lists`] and [`admin`] are the handlers, reading bodies with [`body`];
//!   [`error`] is the JSON error body
//!   (`{"detail": ...}`, FastAPI's shape, so clients that read `detail` keep working);
//! - [`openapi`] is the OpenAPI document generated from the handlers' annotations;
//! - [`server`] runs it on a thread of its own, and [`busy_poll`] keeps that thread awake for a
//!   moment after each answer, so a client's next request does not wait for it to wake;
//!   [`stager`] writes a large posted document on another thread while it is validated, and
//!   [`group_commit`] writes the embedded broker's batches on a third; both are a
//!   [`poll_thread`].
//!
//! Handlers call the synchronous broker and storages inside `block_in_place`: the embedded broker
//! answers in microseconds, a storage read-back may take a network round trip, and either way
//! the runtime moves this worker's other tasks to another thread meanwhile, without the cost of a
//! hop to the blocking pool and back (measured: 273 µs against 543 µs added at p50).
//!
//! Where vcon-host differs from the Python server on purpose (each a fix of its section 9):
//! `GET /vcon/count` is reachable; `DELETE /vcon/{uuid}` also removes the listing and search
//! entries; `GET /config` redacts secrets; `POST /config` validates and never installs or runs
//! anything; the external-ingress key is checked before the body is read; search intersects
//! every term (an unmatched term empties the answer) and its index does not expire after a day;
//! `POST /vcon` answers the document as stored (the Python server answers its pydantic dump
//! with `null`-filled optional fields).

pub mod admin;
pub mod auth;
mod body;
pub mod busy_poll;
pub mod error;
pub mod group_commit;
pub mod lists;
pub mod openapi;
pub mod poll_thread;
pub mod routes;
pub mod server;
pub mod stager;
pub mod vcons;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use host_config::Config;

use crate::broker::Broker;
use crate::pipeline::Pipeline;
use crate::worker::SharedPipeline;

pub use error::ApiError;
pub use routes::router;
pub use server::ApiServer;

/// What the handlers share: the broker, the running pipeline (swapped on reload), and where
/// the config came from (for `GET`/`POST /config`). Every field is shared, not owned: axum
/// clones the state for every request.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The broker.
    pub broker: Arc<dyn Broker>,
    /// The pipeline the workers run; its config holds the tokens, so a reload applies to both.
    pub pipeline: SharedPipeline,
    /// The config file.
    pub config_path: Arc<Path>,
    /// Extra plugin directories from the command line (for `POST /config`'s reload).
    pub plugin_dirs: Arc<[PathBuf]>,
    /// Concurrent ingests, committed together.
    pub ingests: Arc<group_commit::GroupCommit>,
    /// Ingests (`POST /vcon`, external ingress) between their start and their answer: while
    /// there are others, a large body is validated off the API thread.
    pub ingests_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Permits to validate a large body off the API thread ([`ApiState::validators`]).
    pub validating_elsewhere: Arc<tokio::sync::Semaphore>,
    /// Keeps the API thread polling for a moment after each answer.
    pub busy_poll: Arc<busy_poll::BusyPoll>,
    /// Writes a large document posted alone while it is validated; `None` for a broker that
    /// keeps every document in its rows (Redis).
    pub stager: Option<Arc<stager::Stager>>,
}

impl ApiState {
    /// Permits for [`ApiState::validating_elsewhere`]: one per core besides the API thread's.
    /// More validations at once only take turns on the same cores: with 64 clients posting
    /// cat1, unbounded, the blocking pool grew to over forty threads (docs/benchmarks.md).
    pub fn validators() -> Arc<tokio::sync::Semaphore> {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Arc::new(tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1)))
    }

    /// The pipeline as it is now.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        Arc::clone(
            &self
                .pipeline
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The config as it is now.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.pipeline().config)
    }
}

/// Runs a blocking broker or storage call without stalling the runtime: `block_in_place`
/// hands this worker's other tasks to another thread only when there are any, which costs less
/// than a hop to the blocking pool and back for calls of tens of microseconds (the embedded
/// broker's writes).
pub(crate) async fn blocking<T, F>(call: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::block_in_place(call)
}

/// Refuses to serve an address other than loopback without an API token: the Python server
/// leaves every route open when no token is configured, which on a public address gives anyone
/// every vCon.
pub fn check_bind(bind: &SocketAddr, config: &Config) -> Result<()> {
    if config.host.api_tokens.is_empty() && !bind.ip().is_loopback() {
        bail!(
            "refusing to serve the API on {bind} without an API token: anyone who can reach it \
             could read and delete every vCon. Set host.api_token (or CONSERVER_API_TOKEN / \
             CONSERVER_API_TOKEN_FILE), or bind to 127.0.0.1"
        );
    }
    Ok(())
}

/// Parses a bind address (`127.0.0.1:8000`, `[::1]:8000`, `0.0.0.0:8000`).
pub fn parse_bind(text: &str) -> Result<SocketAddr> {
    text.parse().with_context(|| {
        format!("`{text}` is not an address to listen on (expected IP:PORT, e.g. 127.0.0.1:8000)")
    })
}

/// Serves the API on `listener` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let root_path = state.config().host.root_path.clone();
    // Answers are small and latency-bound: do not let Nagle hold the last segment back.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {err}");
        }
    });
    let busy_poll = Arc::clone(&state.busy_poll);
    let polling = tokio::spawn(async move { busy_poll.run().await });
    let served = axum::serve(listener, router(state, &root_path))
        .with_graceful_shutdown(shutdown)
        .await;
    polling.abort();
    served
}
