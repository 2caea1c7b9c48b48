//! `cargo xtask bench broker`: vCons per second through a chain, by broker and number of hosts.
//!
//! The chain has no links and one storage, the in-memory plugin, so what is measured is the
//! host's own cost per vCon and above all the broker's: claim, read the hot copy, write the
//! storage, finish (remove the claim, push egress). Each run starts real `vcon-host run`
//! processes (the built binary, plugins from `target/plugins`), 2 workers each, batches of 32,
//! and waits until they are up (plugins loaded, API listening). The vCons are queued beforehand
//! on a list no chain reads, then moved onto the chain's ingress list in one broker transaction;
//! the clock runs from that move until the last uuid is on the egress list.
//!
//! Rows:
//! - the embedded SQLite broker with one host. Only one: the embedded broker is a single-host
//!   broker by design. Its run lock refuses a second `vcon-host run` on the same file, because
//!   without heartbeats it cannot tell a crashed host's claims from a live one's; and SQLite
//!   serialises writers anyway, so a second process could only queue behind the first.
//! - Redis (database 15 of 127.0.0.1:6379, emptied before each run) with one host, and with two
//!   hosts sharing the queue: the way vcon-host scales past one machine. On one small machine
//!   the two hosts compete for the same cores; across machines each brings its own.
//!
//! Without Redis the Redis rows are skipped, loudly. `VCON_BENCH_VCONS` sets the number of vCons
//! per run (default 20,000); each configuration runs three times and the median is shown.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vcon_host::broker::{Broker, Finish, HotVcon, RedisBroker, SqliteBroker};

const REDIS_URL: &str = "redis://127.0.0.1:6379/15";
const RUNS: usize = 3;

fn plugin_dir() -> PathBuf {
    std::env::var_os("VCON_PLUGIN_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugins")),
        PathBuf::from,
    )
}

const CONFIG: &str = r#"
host: { broker: BROKER, workers: 2, batch_size: 32 }
storages:
  memory: { module: memory }
links: {}
chains:
  main: { links: [], storages: [memory], ingress_lists: [in], egress_lists: [out] }
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Redis,
}

/// Small valid vCons with distinct uuids.
fn vcons(count: usize) -> Vec<HotVcon> {
    (0..count)
        .map(|i| {
            let json = format!(
                r#"{{"vcon":"0.0.1","uuid":"00000000-0000-4000-8000-{i:012}","created_at":"2024-05-01T10:00:00Z","subject":"call {i}","parties":[{{"tel":"+1555{i:07}"}},{{"mailto":"agent{}@example.com"}}],"dialog":[],"analysis":[],"attachments":[]}}"#,
                i % 7
            );
            HotVcon::from_json(json.into_bytes().into(), 0).unwrap()
        })
        .collect()
}

/// Empties Redis database 15 (inline commands: this crate has no Redis client of its own).
/// Answers why not when Redis is not there.
fn flush_redis() -> Result<(), String> {
    let addr = "127.0.0.1:6379".parse().unwrap();
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("no Redis at 127.0.0.1:6379: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(b"SELECT 15\r\nFLUSHDB\r\n")
        .map_err(|e| e.to_string())?;
    for _ in 0..2 {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if !line.starts_with("+OK") {
            return Err(format!("Redis answered {line:?}"));
        }
    }
    Ok(())
}

/// Starts `vcon-host run` and waits until its API listens (plugins loaded, workers running).
fn start_host(dir: &Path, name: &str) -> Child {
    let log = dir.join(format!("{name}.stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_vcon-host"))
        .arg("--config")
        .arg(dir.join("config.yml"))
        .arg("--plugin-dir")
        .arg(plugin_dir())
        .args(["run", "--bind", "127.0.0.1:0"])
        .env_remove("VCON_PLUGIN_PATH")
        .env_remove("REDIS_URL")
        .env_remove("CONSERVER_WORKERS")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    if let Err(text) = wait_ready(&log) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("vcon-host run did not start:\n{text}");
    }
    child
}

/// Waits for the host's "API on" line; answers its stderr when it does not come.
fn wait_ready(log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("API on http://") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(text);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop_host(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "vcon-host run exited with {status}");
}

/// One timed run: answers the seconds from the move onto the ingress list until the last
/// uuid reached the egress list.
fn run_once(kind: Kind, hosts: usize, docs: &[HotVcon]) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let broker_url = match kind {
        Kind::Sqlite => dir.path().join("broker.sqlite").display().to_string(),
        Kind::Redis => {
            flush_redis().unwrap();
            REDIS_URL.to_owned()
        }
    };
    std::fs::write(
        dir.path().join("config.yml"),
        CONFIG.replace("BROKER", &broker_url),
    )
    .unwrap();
    let broker: Arc<dyn Broker> = match kind {
        Kind::Sqlite => Arc::new(SqliteBroker::open(&dir.path().join("broker.sqlite")).unwrap()),
        Kind::Redis => Arc::new(RedisBroker::open(REDIS_URL).unwrap()),
    };
    for chunk in docs.chunks(1000) {
        broker.ingest(chunk, &["staged".into()], None).unwrap();
    }
    let running: Vec<Child> = (0..hosts)
        .map(|i| start_host(dir.path(), &format!("host{i}")))
        .collect();

    let started = Instant::now();
    let staged = broker
        .claim(&["staged".into()], "bench", docs.len())
        .unwrap()
        .unwrap();
    assert_eq!(staged.items.len(), docs.len());
    let ids: Vec<_> = staged.items.iter().map(|i| i.id.clone()).collect();
    let pushes = staged
        .items
        .iter()
        .map(|i| ("in".to_owned(), i.uuid.clone()))
        .collect();
    broker
        .finish(
            &ids,
            &Finish {
                pushes,
                dead_letters: Vec::new(),
            },
        )
        .unwrap();
    let target = docs.len() as u64;
    let deadline = started + Duration::from_secs(600);
    while broker.len("out").unwrap() < target {
        assert!(Instant::now() < deadline, "not done in ten minutes");
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = started.elapsed();
    for child in running {
        stop_host(child);
    }
    assert_eq!(broker.len("in").unwrap(), 0);
    elapsed
}

fn main() {
    let count: usize = std::env::var("VCON_BENCH_VCONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let docs = vcons(count);
    let redis = flush_redis();
    if let Err(why) = &redis {
        eprintln!("\n*** SKIPPED the Redis rows: {why} ***\n");
    }
    println!(
        "vCons per second through a chain into the memory plugin ({count} vCons, 2 workers and \
         batches of 32 per host, median of {RUNS} runs)\n"
    );
    println!(
        "{:<28} {:>5} {:>9} {:>10}",
        "broker", "hosts", "seconds", "vCons/s"
    );
    let configs = [
        (Kind::Sqlite, "embedded (SQLite file)", 1),
        (Kind::Redis, "redis (127.0.0.1, db 15)", 1),
        (Kind::Redis, "redis (127.0.0.1, db 15)", 2),
    ];
    for (kind, name, hosts) in configs {
        if kind == Kind::Redis && redis.is_err() {
            println!("{name:<28} {hosts:>5} {:>9} {:>10}", "-", "skipped");
            continue;
        }
        let mut times: Vec<Duration> = (0..RUNS).map(|_| run_once(kind, hosts, &docs)).collect();
        times.sort();
        let median = times[RUNS / 2];
        println!(
            "{name:<28} {hosts:>5} {:>9.3} {:>10.0}",
            median.as_secs_f64(),
            count as f64 / median.as_secs_f64()
        );
    }
    println!(
        "{:<28} {:>5} {:>9} {:>10}",
        "embedded (SQLite file)", 2, "-", "n/a"
    );
    println!(
        "\nThe embedded broker serves one host: its run lock refuses a second `vcon-host run` on \
         the same file (without heartbeats it cannot tell a dead host's claims from a live \
         one's), and SQLite serialises writers anyway. Several hosts share a Redis broker."
    );
    println!(
        "Cores here: {}. Two hosts on one machine compete for them; on two machines each brings \
         its own.",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
}
