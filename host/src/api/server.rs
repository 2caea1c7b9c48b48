//! The API server beside the workers: its own thread with a small tokio runtime, so the chain
//! workers stay plain threads and a slow request never takes a worker's core.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use tokio::sync::oneshot;

use super::ApiState;

/// Threads of the API's runtime: two keep accepting and parsing while one is inside a broker
/// call (`block_in_place` moves its other tasks away), and leave the cores to the chains.
const RUNTIME_THREADS: usize = 2;

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `bind` (refusing a non-loopback address without a token) and starts serving.
    /// Answers once the socket is bound, so a port in use is an error here, not a log line.
    pub fn start(state: ApiState, bind: SocketAddr) -> Result<Self> {
        super::check_bind(&bind, &state.config())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("vcon-api")
            .enable_all()
            .build()
            .context("starting the API runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(bind))
            .with_context(|| {
                format!("cannot listen on {bind} (in use? give another with --bind or host.bind)")
            })?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vcon-api-main".into())
            .spawn(move || {
                let served = runtime.block_on(super::serve(listener, state, async move {
                    let _ = stopped.await;
                }));
                if let Err(err) = served {
                    tracing::error!("the API server stopped: {err}");
                    eprintln!("vcon-host: the API server stopped: {err}");
                }
            })
            .context("starting the API thread")?;
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub fn stop(mut self) -> Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.thread.take().map_or(Ok(()), |t| {
            t.join().map_err(|_| anyhow!("the API thread panicked"))
        })
    }
}
