//! `cargo xtask bench object-store`: put and get throughput of the built plugin, through the
//! real loader, on the S3-compatible test server (moto on loopback) and on a local directory.
//!
//! Two data sets, each one iteration:
//!
//! - `fake`: the 601 synthetic vCons of `shared/vcons/fake` (1-10 KB each);
//! - `cat1`: 32 copies (fresh uuids) of the 270 KB recorded call.
//!
//! At two concurrencies: `c1`, one `save`/`get` call at a time (two requests each: the document
//! and its pointer); `c32`, one `save_many`/`get_many` of the whole set on a storage opened with
//! `max_concurrency: 32`. Criterion's throughput is objects per second; the set sizes printed at
//! the start turn it into bytes.
//!
//! Filter with criterion's own argument, e.g. `cargo xtask bench object-store -- local`. The S3
//! part is skipped (loudly) when no S3 server can be had, as in the tests. The S3 server is moto
//! unless `VCON_S3_SERVER=s3s-fs` (see `tests/it/s3server.rs`): moto is one Python process and
//! caps at a few hundred requests per second, so only s3s-fs shows how the plugin scales with
//! concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/it/s3server.rs"]
mod s3server;

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use plugin_loader::{PluginLibrary, StorageInstance, VconRecord};

/// One document, with the fields the host extracts.
struct Doc {
    uuid: String,
    json: Vec<u8>,
    created_at_us: i64,
    offset_s: i32,
}

impl Doc {
    fn new(json: Vec<u8>) -> Self {
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let uuid = value["uuid"].as_str().unwrap().to_owned();
        let (created_at_us, offset_s) = value["created_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or((1_700_000_000_000_000, 0), |t| {
                (t.timestamp_micros(), t.offset().local_minus_utc())
            });
        Self {
            uuid,
            json,
            created_at_us,
            offset_s,
        }
    }

    fn record(&self) -> VconRecord<'_> {
        VconRecord::new(&self.uuid, &self.json, self.created_at_us).with_offset(self.offset_s)
    }
}

use conformance::test_data::shared_vcons;

fn plugin() -> &'static PluginLibrary {
    let dir = std::env::var_os("VCON_PLUGIN_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/plugins")),
        PathBuf::from,
    );
    PluginLibrary::load(&dir.join("libvcon_storage_object_store.so"), None)
        .expect("run `cargo xtask build-plugins` first")
}

fn fake_set() -> Vec<Doc> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(shared_vcons().join("fake"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| Doc::new(std::fs::read(p).unwrap()))
        .collect()
}

fn cat1_set() -> Vec<Doc> {
    let cat1 =
        std::fs::read(shared_vcons().join("reference-fixtures/valid/cat1_vcon.json")).unwrap();
    let original = Doc::new(cat1);
    (0..32)
        .map(|_| {
            let uuid = conformance::fresh_uuid();
            let text = String::from_utf8(original.json.clone())
                .unwrap()
                .replace(&original.uuid, &uuid);
            Doc::new(text.into_bytes())
        })
        .collect()
}

/// The places measured: name and options (without `max_concurrency`).
/// The S3 target is named after the server (`s3-moto`, `s3-s3s-fs`, `s3-external`).
fn targets(dir: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    let mut targets = Vec::new();
    if let Some(server) = s3server::server() {
        let bucket = server.bucket("bench");
        targets.push((
            format!("s3-{}", server.kind()),
            server.options(&bucket, "bench"),
        ));
    }
    targets.push((
        "local".to_owned(),
        serde_json::json!({ "url": format!("file://{}", dir.display()) }),
    ));
    targets
}

fn open(options: &serde_json::Value, concurrency: usize) -> StorageInstance {
    let mut options = options.clone();
    options["max_concurrency"] = concurrency.into();
    plugin().open(&options.to_string()).unwrap()
}

fn throughput(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let targets = targets(dir.path());
    for (set_name, docs) in [("fake", fake_set()), ("cat1", cat1_set())] {
        let bytes: usize = docs.iter().map(|d| d.json.len()).sum();
        eprintln!(
            "set {set_name}: {} objects, {:.2} MB, {:.1} KB on average",
            docs.len(),
            bytes as f64 / 1e6,
            bytes as f64 / docs.len() as f64 / 1e3
        );
        let records: Vec<VconRecord<'_>> = docs.iter().map(Doc::record).collect();
        let uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();

        let mut group = c.benchmark_group(format!("put_{set_name}"));
        group.throughput(Throughput::Elements(docs.len() as u64));
        for (target, options) in &targets {
            let single = open(options, 1);
            group.bench_function(BenchmarkId::new(target.as_str(), "c1"), |b| {
                b.iter(|| {
                    for record in &records {
                        single.save(record).unwrap();
                    }
                });
            });
            let batch = open(options, 32);
            group.bench_function(BenchmarkId::new(target.as_str(), "c32"), |b| {
                b.iter(|| {
                    for result in batch.save_many(&records).unwrap() {
                        result.unwrap();
                    }
                });
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("get_{set_name}"));
        group.throughput(Throughput::Elements(docs.len() as u64));
        for (target, options) in &targets {
            let single = open(options, 1);
            // Stored once, whichever put benchmarks the filter kept.
            for result in open(options, 32).save_many(&records).unwrap() {
                result.unwrap();
            }
            group.bench_function(BenchmarkId::new(target.as_str(), "c1"), |b| {
                b.iter(|| {
                    for uuid in &uuids {
                        assert!(single.get(uuid).unwrap().is_some());
                    }
                });
            });
            let batch = open(options, 32);
            group.bench_function(BenchmarkId::new(target.as_str(), "c32"), |b| {
                b.iter(|| {
                    let got = batch.get_many(&uuids).unwrap();
                    assert!(got.iter().all(Option::is_some));
                });
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    targets = throughput
}
criterion_main!(benches);
