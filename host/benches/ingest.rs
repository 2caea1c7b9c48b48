//! `cargo xtask bench ingest`: documents per second from `ingest` to both default storages.
//!
//! Each iteration starts from empty storages and broker (the default chain: the `tag` link,
//! the sqlite and file plugins loaded from `target/plugins`), ingests the documents the way
//! `vcon-host ingest` does (read, validate, queue), runs the chain workers until every document
//! is in both storages, and stops. Throughput is reported in documents per second, end to end.
//! Two sets: the 601 fake vCons (1-10 KB), and 50 copies of cat1 (270 KB) with fresh uuids.
//! A second group runs the same chain into the in-memory plugin only, isolating the host's own
//! cost per vCon from the storages' disk writes (every file is fsynced before it counts).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vcon_host::broker::{Broker, SqliteBroker};
use vcon_host::commands::ingest;
use vcon_host::pipeline::Pipeline;

fn shared() -> PathBuf {
    std::env::var_os("VCON_TEST_DATA").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vcons")),
        PathBuf::from,
    )
}

fn plugin_dir() -> PathBuf {
    std::env::var_os("VCON_PLUGIN_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugins")),
        PathBuf::from,
    )
}

const CONFIG: &str = r#"
host: { broker: DIR/broker.sqlite, workers: 2, batch_size: 32 }
storages:
  sqlite: { module: storage.sqlite, options: { path: DIR/vcons.sqlite } }
  file: { module: storage.file, options: { path: DIR/vcons } }
links:
  tag: { module: links.tag, options: { tags: [bench] } }
chains:
  main: { links: [tag], storages: [sqlite, file], ingress_lists: [in] }
"#;

/// The same chain with the in-memory storage only: what the host itself costs per vCon
/// (validation, broker, the link, the plugin boundary), without disk writes.
const MEMORY_CONFIG: &str = r#"
host: { broker: DIR/broker.sqlite, workers: 2, batch_size: 32 }
storages:
  memory: { module: memory }
links:
  tag: { module: links.tag, options: { tags: [bench] } }
chains:
  main: { links: [tag], storages: [memory], ingress_lists: [in] }
"#;

/// One end-to-end run over `files` with `config`; answers the elapsed time.
fn run_once(config: &str, files: &[PathBuf]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    // Absolute paths: relative ones would be relative to the bench's working directory.
    let config = config.replace("DIR", &dir.path().display().to_string());
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let config = host_config::load(&dir.path().join("config.yml"))
        .unwrap()
        .config;
    let search = plugin_loader::SearchPath::new([plugin_dir()]);
    let pipeline = Pipeline::build(config, &search).unwrap();
    let broker: Arc<dyn Broker> =
        Arc::new(SqliteBroker::open(&dir.path().join("broker.sqlite")).unwrap());
    let lists = vec!["in".to_owned()];

    let started = Instant::now();
    let summary = ingest::ingest(&*broker, files, &lists, None, false, false).unwrap();
    assert_eq!(summary.accepted, files.len());
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(RwLock::new(Arc::new(pipeline)));
    let workers =
        vcon_host::worker::spawn_workers(2, Arc::clone(&broker), shared, Arc::clone(&stop))
            .unwrap();
    while broker.len("in").unwrap() > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    elapsed
}

fn copies_of_cat1(dir: &Path, n: usize) -> Vec<PathBuf> {
    let cat1 =
        std::fs::read_to_string(shared().join("reference-fixtures/valid/cat1_vcon.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&cat1).unwrap();
    let uuid = value["uuid"].as_str().unwrap().to_owned();
    (0..n)
        .map(|i| {
            let path = dir.join(format!("{i}.json"));
            std::fs::write(
                &path,
                cat1.replace(&uuid, &format!("00000000-0000-4000-8000-{i:012}")),
            )
            .unwrap();
            path
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let fake = ingest::collect_files(&[shared().join("fake")]).unwrap();
    let cat1_dir = tempfile::tempdir().unwrap();
    let cat1 = copies_of_cat1(cat1_dir.path(), 50);
    let sets = [("fake_601", &fake), ("cat1_x50", &cat1)];
    // The durable storages need longer to gather ten samples.
    for (group_name, config, seconds) in [
        ("ingest_to_both_storages", CONFIG, 20),
        ("ingest_to_memory_only", MEMORY_CONFIG, 10),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(seconds));
        for (name, files) in sets {
            group.throughput(Throughput::Elements(files.len() as u64));
            group.bench_function(name, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run_once(config, files)).sum());
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
