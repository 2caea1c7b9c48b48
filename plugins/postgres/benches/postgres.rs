//! `cargo xtask bench postgres`: how fast the built plugin writes into the real server, beside
//! the limit, the same upsert sent raw on one connection.
//!
//! - `save/{fake,cat1}`: one `save` per vCon through the loaded plugin (`.so`, real loader), of
//!   the fake set's documents (~3 KB) and of the 270 KB recorded call `cat1`.
//! - `save_many_100/...`, `save_many_1000/...`: batches of 100 and 1,000 (the 601 fake documents
//!   cycled, copies under fresh uuids, in the JSON too).
//! - `.../raw`: the same rows with the same statements (`INSERT ... VALUES` for one, `INSERT ...
//!   SELECT FROM UNNEST(arrays)` for a batch) on one `tokio-postgres` connection driven by a
//!   current-thread runtime (what the synchronous `postgres` crate is), with no pool, no plugin
//!   boundary and no checks: what the server and the driver cost on their own.
//!
//! Every measured write inserts fresh rows into an emptied table (emptied outside the timing),
//! so iterations do the same work. At the end a summary prints rows/s for each and the plugin's
//! share of the raw figure. Needs PostgreSQL at 127.0.0.1:5432 (database `test`, or
//! `VCON_TEST_PG_*` as the tests) and the plugin built (`cargo xtask build-plugins`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use criterion::{Criterion, Throughput};
use plugin_loader::{PluginLibrary, StorageInstance, VconRecord};
use serde_json::Value;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use uuid::Uuid;

const PLUGIN_TABLE: &str = "vcon_bench_plugin";
const RAW_TABLE: &str = "vcon_bench_raw";

/// (rows, time) measured per benchmark, for the summary.
static MEASURED: Mutex<BTreeMap<String, (u64, Duration)>> = Mutex::new(BTreeMap::new());

fn record_measure(id: &str, rows: u64, elapsed: Duration) {
    let mut measured = MEASURED.lock().unwrap();
    let entry = measured.entry(id.to_owned()).or_default();
    entry.0 += rows;
    entry.1 += elapsed;
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn plugin_path() -> PathBuf {
    std::env::var_os("VCON_PLUGIN_DIR")
        .map_or_else(
            || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/plugins")),
            PathBuf::from,
        )
        .join("libvcon_storage_postgres.so")
}

use conformance::test_data::shared_vcons;

/// A document and the fields the host extracts.
#[derive(Clone)]
struct Doc {
    uuid: String,
    json: String,
    created_at_us: i64,
    subject: Option<String>,
}

impl Doc {
    fn from_json(json: String) -> Self {
        let value: Value = serde_json::from_str(&json).unwrap();
        let created_at_us = value["created_at"]
            .as_str()
            .map_or(1_700_000_000_000_000, parse_rfc3339_us);
        Self {
            uuid: value["uuid"].as_str().unwrap().to_owned(),
            subject: value["subject"].as_str().map(str::to_owned),
            json,
            created_at_us,
        }
    }

    /// A copy under a fresh uuid (in the JSON text too).
    fn fresh(&self) -> Self {
        let uuid = Uuid::new_v4().to_string();
        Self {
            json: self.json.replace(&self.uuid, &uuid),
            uuid,
            ..self.clone()
        }
    }

    fn record(&self) -> VconRecord<'_> {
        VconRecord::new(&self.uuid, self.json.as_bytes(), self.created_at_us)
            .with_subject(self.subject.as_deref())
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` as microseconds since the epoch.
fn parse_rfc3339_us(text: &str) -> i64 {
    let num = |s: &str| -> i64 { s.parse().unwrap() };
    let (date, rest) = text.split_once('T').unwrap();
    let mut ymd = date.split('-').map(num);
    let (y, m, d) = (
        ymd.next().unwrap(),
        ymd.next().unwrap(),
        ymd.next().unwrap(),
    );
    let (time, offset_s) = if let Some(time) = rest.strip_suffix('Z') {
        (time, 0)
    } else {
        let at = rest.rfind(['+', '-']).unwrap();
        let (time, offset) = rest.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (oh, om) = offset[1..].split_once(':').unwrap();
        (time, sign * (num(oh) * 3600 + num(om) * 60))
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = hms.split(':').map(num);
    let (h, mi, s) = (
        hms.next().unwrap(),
        hms.next().unwrap(),
        hms.next().unwrap(),
    );
    let micros = if frac.is_empty() {
        0
    } else {
        num(&format!("{frac:0<6}")[..6])
    };
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + h * 3600 + mi * 60 + s - offset_s) * 1_000_000 + micros
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
        .map(|p| Doc::from_json(std::fs::read_to_string(p).unwrap()))
        .collect()
}

fn cat1() -> Doc {
    Doc::from_json(
        std::fs::read_to_string(shared_vcons().join("reference-fixtures/valid/cat1_vcon.json"))
            .unwrap(),
    )
}

/// `n` documents: the set cycled, every one under a fresh uuid.
fn fresh_docs(set: &[Doc], n: usize) -> Vec<Doc> {
    (0..n).map(|i| set[i % set.len()].fresh()).collect()
}

/// The raw path's timestamp parameter (microseconds since 2000-01-01, as the server keeps it).
#[derive(Debug)]
struct Micros(i64);

impl ToSql for Micros {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.put_i64(self.0 - 946_684_800_000_000);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
    to_sql_checked!();
}

/// The raw path's jsonb parameter (version byte, then the text).
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.put_u8(1);
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
    to_sql_checked!();
}

const ON_CONFLICT: &str = "ON CONFLICT (id) DO UPDATE SET vcon = EXCLUDED.vcon, \
     uuid = EXCLUDED.uuid, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
     subject = EXCLUDED.subject, vcon_json = EXCLUDED.vcon_json";

/// One connection, one current-thread runtime, the plugin's two upserts prepared.
struct Raw {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    one: tokio_postgres::Statement,
    many: tokio_postgres::Statement,
}

impl Raw {
    fn connect() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = tokio_postgres::Config::new();
        config
            .host(env_or("VCON_TEST_PG_HOST", "127.0.0.1"))
            .port(env_or("VCON_TEST_PG_PORT", "5432").parse().unwrap())
            .dbname(env_or("VCON_TEST_PG_DATABASE", "test"))
            .user(env_or("VCON_TEST_PG_USER", "postgres"));
        let (client, one, many) = runtime.block_on(async {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let one = client
                .prepare(&format!(
                    "INSERT INTO {RAW_TABLE} (id, vcon, uuid, created_at, updated_at, subject, vcon_json)
                     VALUES ($1::uuid, $3::jsonb ->> 'vcon', $1::uuid, $2::timestamptz, now(), $4::text, $3::jsonb)
                     {ON_CONFLICT}"
                ))
                .await
                .unwrap();
            let many = client
                .prepare(&format!(
                    "INSERT INTO {RAW_TABLE} (id, vcon, uuid, created_at, updated_at, subject, vcon_json)
                     SELECT r.id, r.doc ->> 'vcon', r.id, r.created_at, now(), r.subject, r.doc
                     FROM UNNEST($1::uuid[], $2::timestamptz[], $3::jsonb[], $4::text[])
                          AS r (id, created_at, doc, subject)
                     {ON_CONFLICT}"
                ))
                .await
                .unwrap();
            (client, one, many)
        });
        Self {
            runtime,
            client,
            one,
            many,
        }
    }

    fn save(&self, doc: &Doc) {
        let id = Uuid::parse_str(&doc.uuid).unwrap();
        self.runtime
            .block_on(self.client.execute(
                &self.one,
                &[
                    &id,
                    &Micros(doc.created_at_us),
                    &Jsonb(&doc.json),
                    &doc.subject,
                ],
            ))
            .unwrap();
    }

    fn save_many(&self, docs: &[Doc]) {
        let ids: Vec<Uuid> = docs
            .iter()
            .map(|d| Uuid::parse_str(&d.uuid).unwrap())
            .collect();
        let created: Vec<Micros> = docs.iter().map(|d| Micros(d.created_at_us)).collect();
        let json: Vec<Jsonb<'_>> = docs.iter().map(|d| Jsonb(&d.json)).collect();
        let subjects: Vec<Option<&str>> = docs.iter().map(|d| d.subject.as_deref()).collect();
        self.runtime
            .block_on(
                self.client
                    .execute(&self.many, &[&ids, &created, &json, &subjects]),
            )
            .unwrap();
    }

    fn truncate(&self, table: &str) {
        self.runtime
            .block_on(self.client.batch_execute(&format!("TRUNCATE {table}")))
            .unwrap();
    }
}

fn open_plugin(table: &str) -> StorageInstance {
    let library = PluginLibrary::load(&plugin_path(), None)
        .unwrap_or_else(|e| panic!("{e}: run `cargo xtask build-plugins` first"));
    let options = serde_json::json!({
        "host": env_or("VCON_TEST_PG_HOST", "127.0.0.1"),
        "port": env_or("VCON_TEST_PG_PORT", "5432"),
        "database": env_or("VCON_TEST_PG_DATABASE", "test"),
        "user": env_or("VCON_TEST_PG_USER", "postgres"),
        "table_name": table,
        "sslmode": "disable",
    });
    let storage = library.open(&options.to_string()).unwrap();
    storage.provision(true).unwrap();
    storage
}

fn benches(c: &mut Criterion, plugin: &StorageInstance, raw: &Raw) {
    let fake = fake_set();
    let sets: [(&str, Vec<Doc>); 2] = [("fake", fake), ("cat1", vec![cat1()])];

    for (set_name, set) in &sets {
        let mut group = c.benchmark_group("save");
        group.throughput(Throughput::Elements(1));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if *set_name == "cat1" { 8 } else { 5 }));
        for path in ["plugin", "raw"] {
            let id = format!("save/{set_name}/{path}");
            group.bench_function(format!("{set_name}/{path}"), |b| {
                b.iter_custom(|iters| {
                    let docs = fresh_docs(set, iters as usize);
                    let started = Instant::now();
                    for doc in &docs {
                        if path == "plugin" {
                            plugin.save(&doc.record()).unwrap();
                        } else {
                            raw.save(doc);
                        }
                    }
                    let elapsed = started.elapsed();
                    record_measure(&id, iters, elapsed);
                    raw.truncate(PLUGIN_TABLE);
                    raw.truncate(RAW_TABLE);
                    elapsed
                });
            });
        }
        group.finish();
    }

    for size in [100usize, 1000] {
        for (set_name, set) in &sets {
            let mut group = c.benchmark_group(format!("save_many_{size}"));
            group.throughput(Throughput::Elements(size as u64));
            group.sample_size(10);
            let big = *set_name == "cat1" && size == 1000;
            group.warm_up_time(Duration::from_secs(if big { 3 } else { 1 }));
            group.measurement_time(Duration::from_secs(if big { 40 } else { 8 }));
            for path in ["plugin", "raw"] {
                let id = format!("save_many_{size}/{set_name}/{path}");
                group.bench_function(format!("{set_name}/{path}"), |b| {
                    let docs = fresh_docs(set, size);
                    let records: Vec<VconRecord<'_>> = docs.iter().map(Doc::record).collect();
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            raw.truncate(PLUGIN_TABLE);
                            raw.truncate(RAW_TABLE);
                            let started = Instant::now();
                            if path == "plugin" {
                                let results = plugin.save_many(&records).unwrap();
                                assert!(results.iter().all(Result::is_ok));
                            } else {
                                raw.save_many(&docs);
                            }
                            total += started.elapsed();
                        }
                        record_measure(&id, iters * size as u64, total);
                        total
                    });
                });
            }
            group.finish();
        }
    }
}

fn summary() {
    let measured = MEASURED.lock().unwrap();
    let rate = |id: &str| {
        measured
            .get(id)
            .filter(|(_, t)| !t.is_zero())
            .map(|(rows, t)| *rows as f64 / t.as_secs_f64())
    };
    println!("\npostgres plugin vs raw upsert on one connection (rows/s, every measured call):");
    println!(
        "{:<22} {:>12} {:>12} {:>8}",
        "benchmark", "plugin", "raw", "plugin/raw"
    );
    for bench in [
        "save/fake",
        "save/cat1",
        "save_many_100/fake",
        "save_many_100/cat1",
        "save_many_1000/fake",
        "save_many_1000/cat1",
    ] {
        let (plugin, raw) = (
            rate(&format!("{bench}/plugin")),
            rate(&format!("{bench}/raw")),
        );
        let show = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.0}"));
        let ratio = match (plugin, raw) {
            (Some(p), Some(r)) => format!("{:.0}%", 100.0 * p / r),
            _ => "-".to_owned(),
        };
        println!(
            "{bench:<22} {:>12} {:>12} {:>8}",
            show(plugin),
            show(raw),
            ratio
        );
    }
}

fn main() {
    let plugin = open_plugin(PLUGIN_TABLE);
    let _raw_table = open_plugin(RAW_TABLE);
    let raw = Raw::connect();
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion, &plugin, &raw);
    criterion.final_summary();
    summary();
    for table in [PLUGIN_TABLE, RAW_TABLE] {
        raw.runtime
            .block_on(raw.client.batch_execute(&format!(
                "DROP TABLE IF EXISTS {table}; \
                 DELETE FROM vcon_host_schema_migrations WHERE table_name = '{table}'"
            )))
            .unwrap();
    }
}
