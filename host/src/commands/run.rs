//! `vcon-host run`: start the chain workers and keep them going until SIGINT/SIGTERM.
//!
//! SIGHUP reloads `config.yml`: a valid new config replaces the pipeline between batches; an
//! invalid one is reported and the running one kept. The broker cannot change on reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::api::busy_poll::BusyPoll;
use crate::api::group_commit::GroupCommit;
use crate::api::poll_thread::PollThread;
use crate::api::stager::Stager;
use crate::api::{self, ApiServer, ApiState};
use crate::app;
use crate::broker::Broker;
use crate::pipeline::Pipeline;
use crate::worker::{self, SharedPipeline};

/// What `run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The config file.
    pub config: PathBuf,
    /// Extra plugin directories.
    pub plugin_dirs: Vec<PathBuf>,
    /// Worker count overriding `host.workers`.
    pub workers: Option<usize>,
    /// Where the API listens, overriding `host.bind`.
    pub bind: Option<String>,
}

fn build(config_path: &Path, plugin_dirs: &[PathBuf]) -> Result<Pipeline> {
    let config = app::load_config(config_path)?;
    let search = app::search_path(plugin_dirs, &config);
    Pipeline::build(config, &search).map_err(|errors| anyhow!("{}", errors.join("\n")))
}

/// Runs until a stop signal, then lets every worker finish its batch.
pub fn run(request: &RunRequest) -> Result<()> {
    let pipeline = build(&request.config, &request.plugin_dirs)?;
    // Refuse an unsafe or malformed address before taking the broker or starting anything.
    let bind = api::parse_bind(
        request
            .bind
            .as_deref()
            .unwrap_or(&pipeline.config.host.bind),
    )?;
    api::check_bind(&bind, &pipeline.config)?;
    let broker = app::open_broker_with(&pipeline.config, true)?;
    let recovered = broker
        .requeue_abandoned()
        .context("recovering unfinished work")?;
    if recovered > 0 {
        tracing::warn!("put back {recovered} uuids a previous run had taken but not finished");
    }
    let workers = request
        .workers
        .or(Some(pipeline.config.host.workers).filter(|w| *w > 0))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    let chains: Vec<&str> = pipeline.chains.iter().map(|c| c.name.as_str()).collect();
    eprintln!(
        "vcon-host: {workers} workers on chains [{}], ingress lists [{}], broker {}",
        chains.join(", "),
        pipeline.ingress_lists().join(", "),
        pipeline.config.host.broker
    );
    let shared: SharedPipeline = Arc::new(RwLock::new(Arc::new(pipeline)));
    let stop = Arc::new(AtomicBool::new(false));
    let handles = worker::spawn_workers(
        workers,
        Arc::clone(&broker),
        Arc::clone(&shared),
        Arc::clone(&stop),
    )
    .context("starting workers")?;
    let janitor = spawn_janitor(Arc::clone(&broker), Arc::clone(&stop))?;
    let config = Arc::clone(
        &shared
            .read()
            .map_err(|_| anyhow!("pipeline lock poisoned"))?
            .config,
    );
    let busy_poll = Duration::from_micros(config.host.api_busy_poll_us);
    // One thread for the API's broker work: it writes the group commit's batches and stages
    // large documents (see `api::stager` for why one thread does both). Without it the API
    // still works: batches are written on the API thread, as for Redis, and large documents
    // by their ingest.
    let broker_thread = if broker.is_local() {
        match PollThread::start("vcon-api-broker", busy_poll, broker.background_work()) {
            Ok(thread) => Some(Arc::new(thread)),
            Err(err) => {
                tracing::warn!("no broker thread for the API: {err}");
                None
            }
        }
    } else {
        None
    };
    let stager = broker_thread
        .as_ref()
        .map(|thread| Arc::new(Stager::on(Arc::clone(&broker), Arc::clone(thread))));
    let ingests = broker_thread.map_or_else(GroupCommit::default, GroupCommit::with_writer);
    let api = match ApiServer::start(
        ApiState {
            broker: Arc::clone(&broker),
            pipeline: Arc::clone(&shared),
            config_path: Arc::from(request.config.as_path()),
            plugin_dirs: Arc::from(request.plugin_dirs.as_slice()),
            ingests: Arc::new(ingests),
            ingests_in_flight: Arc::default(),
            validating_elsewhere: ApiState::validators(),
            busy_poll: Arc::new(BusyPoll::new(busy_poll, broker.background_work())),
            stager,
        },
        bind,
    ) {
        Ok(api) => api,
        Err(err) => {
            stop.store(true, Ordering::Relaxed);
            return Err(err);
        }
    };
    eprintln!(
        "vcon-host: API on http://{} (also under {})",
        api.addr(),
        config.host.root_path
    );

    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    for signal in signals.forever() {
        match signal {
            SIGHUP => reload(request, &shared),
            _ => {
                eprintln!("vcon-host: stopping: finishing the batches in hand");
                break;
            }
        }
    }
    if let Err(err) = api.stop() {
        eprintln!("vcon-host: {err}");
    }
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        let _ = handle.join();
    }
    let _ = janitor.join();
    for storage in shared
        .read()
        .map_err(|_| anyhow!("pipeline lock poisoned"))?
        .storages
        .iter()
    {
        if let Err(err) = storage.instance().close() {
            tracing::warn!(storage = storage.name(), "closing: {err}");
        }
    }
    eprintln!("vcon-host: stopped");
    Ok(())
}

fn reload(request: &RunRequest, shared: &SharedPipeline) {
    match build(&request.config, &request.plugin_dirs) {
        Ok(new) => {
            let old_broker = shared.read().map(|p| p.config.host.broker.clone()).ok();
            if old_broker.as_ref() != Some(&new.config.host.broker) {
                eprintln!("vcon-host: reload: host.broker changed; restart to use it (keeping the current broker)");
            }
            if let Ok(mut current) = shared.write() {
                *current = Arc::new(new);
            }
            eprintln!("vcon-host: reloaded {}", request.config.display());
        }
        Err(err) => eprintln!("vcon-host: reload refused, keeping the running config: {err:#}"),
    }
}

/// Puts back abandoned claims every 10 s and drops expired vCons from the hot store once a
/// minute.
fn spawn_janitor(
    broker: Arc<dyn Broker>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vcon-janitor".into())
        .spawn(move || {
            let mut ticks = 0u32;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                ticks += 1;
                if ticks.is_multiple_of(50) {
                    // Another host sharing a Redis broker may have died holding claims.
                    match broker.requeue_abandoned() {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!("put back {n} uuids a host that died had taken"),
                        Err(err) => tracing::warn!("looking for abandoned claims: {err}"),
                    }
                }
                if ticks.is_multiple_of(300) {
                    match broker.purge_expired() {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!("purged {n} expired vCons from the hot store"),
                        Err(err) => tracing::warn!("purging expired vCons: {err}"),
                    }
                }
            }
        })
        .context("starting the janitor thread")
}
