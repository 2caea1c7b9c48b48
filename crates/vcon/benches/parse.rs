//! `cargo xtask bench vcon`: the cost of validating and indexing one document, which every
//! ingested vCon pays once.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn shared() -> PathBuf {
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

fn bench(c: &mut Criterion) {
    let fake = std::fs::read_dir(shared().join("fake"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .find(|b| (4_000..6_000).contains(&b.len()))
        .unwrap();
    // The document `cargo xtask bench api` posts: the fake vCon nearest 5 KB, a chat of 22
    // dialogs, so many small fields rather than a few long ones.
    let chat = std::fs::read(shared().join("fake/03f94617-0a05-40cd-89a7-69e746fa512a.vcon.json"))
        .unwrap();
    let cat1 = std::fs::read(shared().join("reference-fixtures/valid/cat1_vcon.json")).unwrap();
    let mut group = c.benchmark_group("parse");
    for (name, doc) in [
        ("fake_5kb", &fake),
        ("fake_5kb_22_dialogs", &chat),
        ("cat1_270kb", &cat1),
    ] {
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_function(name, |b| b.iter(|| vcon::parse(doc).unwrap()));
    }
    // Both readers at every size, for `SCAN_FROM_BYTES` (crates/vcon/src/parse.rs): where the
    // scan starts to pay.
    for (name, doc) in [
        ("fake_5kb", &fake),
        ("fake_5kb_22_dialogs", &chat),
        ("cat1_270kb", &cat1),
    ] {
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_function(format!("{name}/with_scan"), |b| {
            b.iter(|| vcon::parse_with_scan(doc).unwrap())
        });
        group.bench_function(format!("{name}/with_serde"), |b| {
            b.iter(|| vcon::parse_with_serde(doc).unwrap())
        });
    }
    group.finish();

    // What `parse` does to a large document before any rule runs, both ways: serde_json
    // skipping it whole, and json-scan validating it and finding its members (the path `parse`
    // takes from 16 KiB). Pretty-printed as posted, and compact, to show what whitespace costs.
    let cat1_text = std::str::from_utf8(&cat1).unwrap();
    let compact =
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(cat1_text).unwrap())
            .unwrap();
    let mut group = c.benchmark_group("read_whole");
    for (name, text) in [("cat1", cat1_text), ("cat1_compact", compact.as_str())] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("{name}/serde_json_skip"), |b| {
            b.iter(|| serde_json::from_str::<serde::de::IgnoredAny>(text).unwrap())
        });
        if json_scan::accelerated() {
            group.bench_function(format!("{name}/json_scan"), |b| {
                b.iter(|| json_scan::object_members(text).unwrap())
            });
        }
        // What the host does to a posted vCon after validating it: drop the whitespace
        // between tokens (`host/src/stored_form.rs`); the compact text has none to drop.
        group.bench_function(format!("{name}/compact"), |b| {
            b.iter(|| json_scan::compact(text.as_bytes()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
