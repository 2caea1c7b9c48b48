//! The API server beside the workers: its own thread with a small tokio runtime, so the chain
//! workers stay plain threads and a slow request never takes a worker's core.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use tokio::sync::oneshot;

use super::ApiState;

/// Worker threads of the API's runtime. One: it owns the sockets, so it can poll them between
/// requests without another worker holding them asleep ([`super::busy_poll`]); group commit
/// still gathers concurrent requests into one broker write ([`super::group_commit`]). Against
/// two workers without polling, `cargo xtask bench api -- api-only` measured one client 30–40 %
/// faster and 8 and 64 clients somewhat slower (parsing and the broker write share the thread),
/// and the end-to-end rows faster, since the chain workers keep the other core
/// (docs/benchmarks.md). A call that may block for long (a broker across the network, a storage
/// read-back) goes through `block_in_place`, which hands this worker's sockets to another thread
/// meanwhile, so the runtime never stalls.
const RUNTIME_THREADS: usize = 1;

/// How many tasks the runtime's worker runs from its own queue before it looks at the tasks
/// woken from other threads: every time. A request whose batch the broker writer thread has
/// committed ([`super::group_commit`]) is woken from that thread, onto the runtime's shared
/// queue, and tokio's default (61) had it wait behind that many turns of the busy-poll task,
/// which never leaves the worker's own queue empty: one client's 5 KB posts had a p50 of
/// 121–123 µs that way, 83–97 µs looking every time (docs/benchmarks.md). Looking at an empty
/// shared queue is one atomic load.
const GLOBAL_QUEUE_INTERVAL: u32 = 1;

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
            .global_queue_interval(GLOBAL_QUEUE_INTERVAL)
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
