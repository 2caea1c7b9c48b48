//! `cargo xtask bench abi`: what the plugin boundary costs.
//!
//! - `save_5kb/in_process` vs `save_5kb/through_plugin`: the memory storage called on the SDK
//!   trait in this process, and the same call on the same code loaded as a `.so` through the
//!   real loader. The difference is the boundary (vtable hop, `catch_unwind`, R-type
//!   conversions).
//! - `get_5kb/...`: the same for a read (the answer is copied into an `RVec` and back).
//! - `save_5kb/spawn_blocking_round_trip`: the host's real call path, a blocking-pool hand-off
//!   from an async worker, which dominates the boundary itself.
//! - `file_save_cat1`: the file plugin saving the 270 KB reference vCon (when built).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use plugin_loader::{PluginLibrary, VconRecord};
use plugin_sdk::{OpenContext, Storage, StoragePlugin};

const UUID: &str = "018f2b9c-6a4e-7c1d-9f00-0123456789ab";

fn plugin_dir() -> PathBuf {
    std::env::var_os("VCON_PLUGIN_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/plugins")),
        PathBuf::from,
    )
}

fn shared_vcons() -> PathBuf {
    std::env::var_os("VCON_TEST_DATA").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/vcons"
            ))
        },
        PathBuf::from,
    )
}

/// A ~5 KB vCon: a real one from the shared set when present, else a generated one.
fn five_kb_document() -> Vec<u8> {
    let fake = shared_vcons().join("fake");
    std::fs::read_dir(&fake)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| std::fs::read(e.path()).unwrap_or_default())
                .find(|bytes| (4_000..6_000).contains(&bytes.len()))
        })
        .unwrap_or_else(|| conformance::Document::sized(5_000).json)
}

fn boundary(c: &mut Criterion) {
    let doc = five_kb_document();
    let in_process =
        vcon_storage_memory::MemoryStorage::open(Default::default(), &OpenContext::default())
            .unwrap();
    let library = PluginLibrary::load(&plugin_dir().join("libvcon_storage_memory.so"), None)
        .expect("run `cargo xtask build-plugins` first");
    let loaded = Arc::new(library.open("{}").unwrap());

    let mut group = c.benchmark_group("save_5kb");
    group.throughput(Throughput::Bytes(doc.len() as u64));
    group.bench_function("in_process", |b| {
        let record = plugin_sdk::VconRecord::for_test(UUID, &doc);
        b.iter(|| in_process.save(&record).unwrap());
    });
    group.bench_function("through_plugin", |b| {
        let record = VconRecord::new(UUID, &doc, 1_700_000_000_000_000);
        b.iter(|| loaded.save(&record).unwrap());
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let shared_doc: Arc<[u8]> = doc.clone().into();
    group.bench_function("spawn_blocking_round_trip", |b| {
        b.iter(|| {
            let storage = Arc::clone(&loaded);
            let doc = Arc::clone(&shared_doc);
            runtime.block_on(async move {
                tokio::task::spawn_blocking(move || {
                    storage.save(&VconRecord::new(UUID, &doc, 1_700_000_000_000_000))
                })
                .await
                .unwrap()
                .unwrap();
            });
        });
    });
    group.finish();

    let mut group = c.benchmark_group("get_5kb");
    group.throughput(Throughput::Bytes(doc.len() as u64));
    group.bench_function("in_process", |b| {
        b.iter(|| in_process.get(UUID).unwrap().unwrap());
    });
    group.bench_function("through_plugin", |b| {
        b.iter(|| loaded.get(UUID).unwrap().unwrap());
    });
    group.finish();
}

fn file_save_cat1(c: &mut Criterion) {
    let path = plugin_dir().join("libvcon_storage_file.so");
    let cat1 = shared_vcons().join("reference-fixtures/valid/cat1_vcon.json");
    let (Ok(library), Ok(doc)) = (PluginLibrary::load(&path, None), std::fs::read(&cat1)) else {
        eprintln!("file plugin or cat1 missing: skipping file_save_cat1");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let options = serde_json::json!({ "path": dir.path() }).to_string();
    let storage = library.open(&options).unwrap();
    let mut group = c.benchmark_group("file_save_cat1");
    group.throughput(Throughput::Bytes(doc.len() as u64));
    group.sample_size(30);
    group.bench_function("through_plugin", |b| {
        b.iter_batched(
            conformance::fresh_uuid,
            |uuid| {
                storage
                    .save(&VconRecord::new(&uuid, &doc, 1_700_000_000_000_000))
                    .unwrap()
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, boundary, file_save_cat1);
criterion_main!(benches);
