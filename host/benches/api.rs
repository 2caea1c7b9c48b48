//! `cargo xtask bench api`: `POST /vcon` throughput and latency against a real `vcon-host run`.
//!
//! The built binary runs the default chain (the `tag` link, the sqlite and file storages from
//! `target/plugins`) on an empty scratch directory; clients on keep-alive connections post
//! vCons with fresh uuids, each queued on the chain's ingress list, and the run counts only
//! once every vCon has reached both storages (the egress list says so). For each set (the 601
//! fake vCons, 1-10 KB; cat1, 270 KB) and 1, 8 and 64 concurrent clients it prints requests per
//! second, p50 and p99 latency of the `POST`, and the end-to-end rate (posted and stored).
//!
//! The baseline the issue asks about: the same 5 KB vCon written straight into the embedded
//! broker (`Broker::ingest`, one transaction, as `POST /vcon` does), in this process, with the
//! broker opened as `run` opens it (checkpoint thread and all); the difference of the p50s is
//! what the HTTP layer adds. The broker-write rows also give the mean and the longest commit,
//! which show the checkpoint thread's pauses, for the 5 KB vCon and for cat1.
//!
//! Not criterion: a load generator with many clients is not a closure timed in a loop. Every
//! figure comes from this file; `VCON_BENCH_REQUESTS` changes how many requests a run makes,
//! `VCON_BENCH_CLIENTS` which client counts run (`1,8`; default `1,8,64`),
//! `VCON_BENCH_ROUNDS` how many times each API-only row runs (alternating with the compared
//! server, so both see the machine in the same state; the median ratio closes each client count),
//! `VCON_BENCH_API_SETS` which documents the rows post (`5kb,fake,cat1`),
//! `cargo xtask bench api -- api-only` runs only the API-only rows (and the broker writes), and
//! `-- broker-only` only the broker writes. `VCON_BENCH_HOST_BIN=PATH` runs another build of
//! `vcon-host` (another commit's, built beside) in place of this one, so two builds can be
//! alternated run by run on a machine whose speed drifts (docs/benchmarks.md). Each client is a thread with one keep-alive
//! connection of `support/load_client.rs` (one write per request). The output opens with what
//! the machine's page cache and disk did just before the runs and closes with the share of CPU
//! time the hypervisor took meanwhile, since on a virtual machine those move the figures from
//! one day to the next. The API-only and broker-write rows end with `disk`: what the machine
//! wrote to its disks during the row, to read beside the opening line's rate to the disk.
//! The host's log lines (its warnings, or what `VCON_LOG` asks for) come out on the bench's
//! stderr, prefixed `host:`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vcon_host::broker::{now_us, Broker, HotVcon, SqliteBroker};

#[path = "support/load_client.rs"]
mod load_client;
use load_client::Poster;

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
host: { broker: ./broker.sqlite, workers: 2, batch_size: 32 }
storages:
  sqlite: { module: storage.sqlite, options: { path: ./vcons.sqlite } }
  file: { module: storage.file, options: { path: ./vcons } }
links:
  tag: { module: links.tag, options: { tags: [bench] } }
chains:
  main: { links: [tag], storages: [sqlite, file], ingress_lists: [in], egress_lists: [out] }
"#;

/// The same host with the chain reading another list: only the API and the broker write are
/// measured, as a server without workers would be.
const API_ONLY_CONFIG: &str = r#"
host: { broker: ./broker.sqlite, workers: 2, batch_size: 32 }
storages:
  sqlite: { module: storage.sqlite, options: { path: ./vcons.sqlite } }
links: {}
chains:
  main: { links: [], storages: [sqlite], ingress_lists: [not_posted_to] }
"#;

/// Prints one row of `POST` figures for `url` (queued, not waited for) and answers its requests
/// per second. With one client the mean is what sets the rate; its distance from the p50 is the
/// pauses (checkpoints, the disk, the scheduler), and the `>1 ms` column says how much of all the
/// requests' time was spent beyond 1 ms in the requests that took longer. For a server whose
/// process is known (`server`), the `CPU/req` column is the CPU time its threads spent per
/// request: on a virtual machine whose speed moves from one run to the next, that moves far less
/// than the rate, so it is the figure to compare two builds by. The last two columns are the load
/// client's, per request (all its threads, on the same two cores): the CPU it spent, and how long
/// it waited to run once it could (`client wait`: woken by the answer, or preempted), a cost the
/// compared server's rows pay as well. It counts from when the scheduler queued the thread: on a
/// virtual machine, the time a halted vCPU takes to come back before that is not in it.
fn api_only_row(
    label: &str,
    url: &str,
    docs: Vec<Vec<u8>>,
    clients: usize,
    server: Option<u32>,
) -> f64 {
    let total = docs.len();
    let cpu_before = server.map(|pid| (pid, process_cpu(pid)));
    let disk_before = disk_bytes_written();
    let Posted {
        elapsed,
        latencies,
        client,
    } = post_all(url, docs, clients);
    let disk = disk_rate(disk_before, elapsed);
    let cpu_per_request = cpu_before
        .map(|(pid, before)| micros(process_cpu(pid).saturating_sub(before) / total as u32))
        .unwrap_or_else(|| "-".to_owned());
    const PAUSE: Duration = Duration::from_millis(1);
    let beyond: Duration = latencies.iter().map(|d| d.saturating_sub(PAUSE)).sum();
    let all: Duration = latencies.iter().sum();
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "{:<22} {:>8} {:>12.0} {:>10} {:>10} {:>10} {:>10} {:>9.1}% {:>10} {:>10} {:>11} {:>10}",
        label,
        clients,
        rate,
        micros(percentile(&latencies, 0.5)),
        micros(mean(&latencies)),
        micros(percentile(&latencies, 0.99)),
        micros(latencies[latencies.len() - 1]),
        100.0 * beyond.as_secs_f64() / all.as_secs_f64(),
        cpu_per_request,
        micros(client.ran / total as u32),
        micros(client.waited / total as u32),
        disk
    );
    rate
}

/// The CPU time every thread of process `pid` has run so far (the sum of
/// `/proc/PID/task/*/schedstat`, in nanoseconds: the clock-tick counters of `/proc/PID/stat`
/// are too coarse for a run of a second). Threads that ended are not counted; the host's run
/// for the length of a row.
fn process_cpu(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .flatten()
        .filter_map(|task| schedstat(&task.path().join("schedstat")))
        .map(|times| times.ran)
        .sum()
}

/// What a thread's `schedstat` file says: how long it has run, and how long it has waited to
/// run while runnable. `ThreadTimes::default()` (zero) off Linux.
#[derive(Debug, Default, Clone, Copy)]
struct ThreadTimes {
    ran: Duration,
    waited: Duration,
}

impl std::ops::Sub for ThreadTimes {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            ran: self.ran.saturating_sub(earlier.ran),
            waited: self.waited.saturating_sub(earlier.waited),
        }
    }
}

impl std::ops::AddAssign for ThreadTimes {
    fn add_assign(&mut self, other: Self) {
        self.ran += other.ran;
        self.waited += other.waited;
    }
}

/// The first two fields of a `schedstat` file, in nanoseconds (`None` when unreadable, as off
/// Linux or for a thread that just ended).
fn schedstat(path: &std::path::Path) -> Option<ThreadTimes> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let ran = fields.next()?.ok()?;
    let waited = fields.next()?.ok()?;
    Some(ThreadTimes {
        ran: Duration::from_nanos(ran),
        waited: Duration::from_nanos(waited),
    })
}

/// The API-only rows of one document: for each client count, `rounds` runs of vcon-host, each
/// followed by one of the compared server (a quarter of the requests: it is far slower) when
/// there is one, with each ratio and, over several rounds, their median.
fn api_only_set(
    label: &str,
    sources: &[Vec<u8>],
    count: usize,
    client_counts: &[usize],
    compare: Option<&str>,
    rounds: usize,
) {
    println!("\nPOST /vcon of {label}, the API only (nothing consumes the list)");
    println!(
        "{:<22} {:>8} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10}",
        "server",
        "clients",
        "posts/s",
        "p50",
        "mean",
        "p99",
        "max",
        ">1 ms",
        "CPU/req",
        "client CPU",
        "client wait",
        "disk"
    );
    for &clients in client_counts {
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            // At least a few requests per client, so many clients on a large document still
            // measure a steady state rather than each connection's first request.
            let docs = with_fresh_uuids(sources, count.max(clients * 8));
            let host = Host::start(API_ONLY_CONFIG);
            let url = format!("{}/api/vcon?ingress_lists=default_ingress", host.base);
            let ours = api_only_row("vcon-host", &url, docs, clients, Some(host.child.id()));
            drop(host);
            if let Some(base) = compare {
                let url = format!("{base}/vcon?ingress_lists=default_ingress");
                let docs = with_fresh_uuids(sources, (count / 4).max(clients * 4));
                let theirs = api_only_row(base, &url, docs, clients, None);
                ratios.push(ours / theirs);
                println!("{:<22} {:>8} {:>11.1}×", "ratio", clients, ours / theirs);
            }
        }
        if ratios.len() > 1 {
            ratios.sort_by(f64::total_cmp);
            println!(
                "median ratio at {clients} client(s) over {} rounds: {:.1}× (lowest {:.1}×, highest {:.1}×)",
                ratios.len(),
                median(&ratios),
                ratios[0],
                ratios[ratios.len() - 1]
            );
        }
    }
}

/// Scratch directories, removed when the bench ends rather than after each run: on an ext4
/// without a journal (this project's development machine) the kernel skips every inode freed in
/// the last 30 seconds when it allocates one, so deleting a run's thousands of files (the file
/// storage's, and the broker's documents when each had a file of its own) slowed each file the
/// next run created by 300 µs or more.
static SCRATCH: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

/// What every scratch directory's name starts with, before this process's id.
const SCRATCH_PREFIX: &str = "vcon-api-bench-";

fn scratch_dir() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
        .tempdir()
        .unwrap();
    let path = dir.path().to_owned();
    SCRATCH.lock().unwrap().push(dir);
    path
}

/// Removes the scratch directories of bench processes that are gone: one stopped with Ctrl-C
/// never reaches the end where [`SCRATCH`] is cleared, and its runs leave gigabytes of
/// documents in the temporary directory.
fn remove_abandoned_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !PathBuf::from("/proc").join(pid).exists() {
            println!(
                "removing {}, left by an interrupted bench",
                entry.path().display()
            );
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A `vcon-host run` on a scratch directory.
/// The `vcon-host` the rows run: this build's, or `VCON_BENCH_HOST_BIN` to compare another.
fn host_binary() -> PathBuf {
    std::env::var_os("VCON_BENCH_HOST_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_vcon-host")),
        PathBuf::from,
    )
}

struct Host {
    child: Child,
    base: String,
}

impl Host {
    fn start(config: &str) -> Self {
        let dir = scratch_dir();
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let mut child = Command::new(host_binary())
            .args(["--config", "config.yml", "--plugin-dir"])
            .arg(plugin_dir())
            .args(["run", "--bind", "127.0.0.1:0"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // The address goes to the bench; the host's log lines (its warnings by default, or what
        // `VCON_LOG` asks for, e.g. `vcon_broker=debug` for each checkpoint pause) go on
        // to the bench's stderr, prefixed; its own status lines (`vcon-host: ...`) do not.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("vcon-host: API on http://") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                } else if !line.starts_with("vcon-host: ") {
                    eprintln!("host: {line}");
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// `count` documents from `sources`, each with a fresh uuid (every occurrence replaced, so
/// dialog references to it stay consistent).
fn with_fresh_uuids(sources: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let source = &sources[i % sources.len()];
            let doc: serde_json::Value = serde_json::from_slice(source).unwrap();
            let old = doc["uuid"].as_str().unwrap();
            let new = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | i as u128)
                .hyphenated()
                .to_string();
            String::from_utf8(source.clone())
                .unwrap()
                .replace(old, &new)
                .into_bytes()
        })
        .collect()
}

fn fake_set() -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared().join("fake"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn cat1() -> Vec<Vec<u8>> {
    vec![std::fs::read(shared().join("reference-fixtures/valid/cat1_vcon.json")).unwrap()]
}

fn mean(times: &[Duration]) -> Duration {
    times.iter().sum::<Duration>() / times.len() as u32
}

/// The median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// What one run measured.
struct Figures {
    posts_per_s: f64,
    p50: Duration,
    p99: Duration,
    stored_per_s: f64,
}

/// What [`post_all`] measured.
struct Posted {
    elapsed: Duration,
    /// Every request's latency, sorted.
    latencies: Vec<Duration>,
    /// The client threads' times, all together: the CPU the load generator itself costs the
    /// machine the server runs on, and how long it waited for a core once it could run.
    client: ThreadTimes,
}

/// The calling thread's times so far (`/proc/thread-self/schedstat`).
fn thread_times() -> ThreadTimes {
    schedstat("/proc/thread-self/schedstat".as_ref()).unwrap_or_default()
}

/// Posts every document from `clients` keep-alive connections to `url`.
fn post_all(url: &str, docs: Vec<Vec<u8>>, clients: usize) -> Posted {
    let docs = Arc::new(docs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = url.to_owned();
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (docs, next, url) = (Arc::clone(&docs), Arc::clone(&next), url.clone());
            std::thread::spawn(move || {
                let before = thread_times();
                let mut poster = Poster::connect(&url);
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(doc) = docs.get(i) else {
                        return (latencies, thread_times() - before);
                    };
                    let sent = Instant::now();
                    assert_eq!(poster.post(doc), 201);
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut client = ThreadTimes::default();
    for thread in threads {
        let (times, spent) = thread.join().unwrap();
        latencies.extend(times);
        client += spent;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Posted {
        elapsed,
        latencies,
        client,
    }
}

fn run(docs: Vec<Vec<u8>>, clients: usize) -> Figures {
    let host = Host::start(CONFIG);
    let total = docs.len();
    let started = Instant::now();
    let url = format!("{}/api/vcon?ingress_lists=in", host.base);
    let Posted {
        elapsed: posted,
        latencies,
        ..
    } = post_all(&url, docs, clients);
    // Stored: every vCon is on the egress list once both storages have it.
    let agent = agent();
    let count_url = format!("{}/api/vcon/count?egress_list=out", host.base);
    loop {
        let mut response = agent.get(&count_url).call().unwrap();
        let n: usize = response
            .body_mut()
            .read_to_string()
            .unwrap()
            .parse()
            .unwrap();
        if n >= total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the chain stalled at {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stored = started.elapsed();
    Figures {
        posts_per_s: total as f64 / posted.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        stored_per_s: total as f64 / stored.as_secs_f64(),
    }
}

/// `Broker::ingest` of `count` copies of `doc` (fresh uuids), one transaction each, into the
/// embedded broker opened as `vcon-host run` opens it (its checkpoint thread running), in this
/// process: each commit's time, sorted.
fn broker_writes(doc: &[u8], count: usize) -> BrokerWrites {
    let broker = SqliteBroker::open_for_run(&scratch_dir().join("broker.sqlite")).unwrap();
    let docs = with_fresh_uuids(&[doc.to_vec()], count);
    let lists = vec!["in".to_owned()];
    let ttl = Some(Duration::from_secs(3600));
    let frames_before = sqlite_wal_vfs::wal_writes().frames;
    let disk_before = disk_bytes_written();
    let started_all = Instant::now();
    let mut times: Vec<Duration> = docs
        .into_iter()
        .map(|bytes| {
            let vcon = HotVcon::from_json(bytes.into(), now_us()).unwrap();
            let started = Instant::now();
            broker.ingest(&[vcon], &lists, ttl).unwrap();
            started.elapsed()
        })
        .collect();
    let disk = disk_rate(disk_before, started_all.elapsed());
    let frames = sqlite_wal_vfs::wal_writes().frames - frames_before;
    times.sort();
    BrokerWrites {
        pages_per_commit: frames as f64 / count as f64,
        disk,
        times,
    }
}

/// What [`broker_writes`] measured.
struct BrokerWrites {
    /// Each commit's time, sorted.
    times: Vec<Duration>,
    /// WAL pages appended per commit (the broker writes through `sqlite-wal-vfs`, which counts
    /// them): what each vCon costs the WAL and the checkpoint that copies it back.
    pages_per_commit: f64,
    /// What the machine wrote to its disks meanwhile ([`disk_rate`]).
    disk: String,
}

/// Prints one row of broker-write figures. The mean counts the checkpoint thread's pauses (it
/// holds the writers off once per WAL limit), which the p50 does not show.
fn broker_write_row(label: &str, writes: &BrokerWrites) {
    let times = &writes.times;
    println!(
        "{:<10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>11.1} {:>10}",
        label,
        times.len(),
        micros(percentile(times, 0.5)),
        micros(mean(times)),
        micros(percentile(times, 0.99)),
        micros(times[times.len() - 1]),
        writes.pages_per_commit,
        writes.disk
    );
}

/// A count from the environment variable `name`, or `default` when it is unset or not a number.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Bytes the machine has written to its disks so far: the sectors written (always 512 bytes in
/// `/proc/diskstats`) of every block device that sits on no other (a partition, or a
/// device-mapper volume over a disk, would count the same writes twice). `None` off Linux.
fn disk_bytes_written() -> Option<u64> {
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    let mut bytes = 0;
    for line in stats.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(sectors)) = (fields.get(2), fields.get(9)) else {
            continue;
        };
        let device = std::path::Path::new("/sys/block").join(name);
        let over_another =
            std::fs::read_dir(device.join("slaves")).is_ok_and(|mut under| under.next().is_some());
        if device.exists() && !over_another {
            bytes += sectors.parse::<u64>().ok()? * 512;
        }
    }
    Some(bytes)
}

/// The disks' write rate since `before` ([`disk_bytes_written`]), over `elapsed`, for a row's
/// `disk` column: the writeback of everything on the machine, not only the server's (the
/// compared server's Redis here keeps nothing on disk). Read beside the `machine:` line's rate
/// to the disk, it says how close a row came to what the disk takes.
fn disk_rate(before: Option<u64>, elapsed: Duration) -> String {
    match (before, disk_bytes_written()) {
        (Some(before), Some(after)) => format!(
            "{:.0} MB/s",
            after.saturating_sub(before) as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
        ),
        _ => "-".to_owned(),
    }
}

/// The CPU's `(stolen, all)` ticks so far, from `/proc/stat`'s first line (`None` off Linux).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    Some((*ticks.get(7)?, ticks.iter().sum()))
}

/// What this machine's page cache and disk did just before the runs, printed with them so
/// figures from different days (or machines) can be read side by side: on the project's VM the
/// same code ran two to three times slower from one day to the next, with the disk, the cost of
/// fresh memory and the hypervisor's share of the CPU as the differences (docs/benchmarks.md).
fn print_machine() {
    let dir = scratch_dir().join("machine");
    std::fs::create_dir(&dir).unwrap();
    // New files of cat1's size, as the broker writes them: each takes fresh page-cache pages.
    let doc = vec![b' '; 270 * 1024];
    let files: Vec<PathBuf> = (0..128).map(|i| dir.join(format!("{i}.json"))).collect();
    let started = Instant::now();
    for path in &files {
        std::fs::write(path, &doc).unwrap();
    }
    let page_cache = (files.len() * doc.len()) as f64 / started.elapsed().as_secs_f64() / 1e6;
    // On the disk before the runs start, so their writeback does not fall into the first run.
    for path in &files {
        std::fs::File::open(path).unwrap().sync_data().unwrap();
    }
    // The disk itself: 256 MiB written and fdatasync'ed.
    let block = vec![0_u8; 1 << 20];
    let started = Instant::now();
    let mut file = std::fs::File::create(dir.join("disk")).unwrap();
    for _ in 0..256 {
        std::io::Write::write_all(&mut file, &block).unwrap();
    }
    file.sync_data().unwrap();
    let disk = (256 * block.len()) as f64 / started.elapsed().as_secs_f64() / 1e6;
    println!(
        "machine: {page_cache:.0} MB/s into new files of 270 KB (the page cache), {disk:.0} MB/s \
         to the disk with fdatasync"
    );
}

/// Prints the share of CPU time the hypervisor took since `before` ([`cpu_ticks`]).
fn print_stolen(before: Option<(u64, u64)>) {
    if let (Some((stolen0, all0)), Some((stolen1, all1))) = (before, cpu_ticks()) {
        let share = 100.0 * (stolen1 - stolen0) as f64 / (all1 - all0).max(1) as f64;
        println!("machine: {share:.1} % of the CPU time stolen by the hypervisor during the bench");
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    assert!(
        plugin_dir().join("libvcon_storage_sqlite.so").is_file(),
        "plugins missing: run `cargo xtask bench api` (it builds them)"
    );
    let requests = env_count("VCON_BENCH_REQUESTS", 3000);
    remove_abandoned_scratch();
    let ticks_before = cpu_ticks();
    print_machine();
    // `VCON_BENCH_CLIENTS=1` (a comma-separated list) runs only those client counts.
    let client_counts: Vec<usize> = std::env::var("VCON_BENCH_CLIENTS").map_or_else(
        |_| vec![1, 8, 64],
        |v| v.split(',').map(|n| n.trim().parse().unwrap()).collect(),
    );
    let fake = fake_set();
    // The fake vCon nearest 5 KB, for the baseline.
    let five_kb = fake
        .iter()
        .min_by_key(|d| d.len().abs_diff(5 * 1024))
        .unwrap()
        .clone();
    println!(
        "POST /vcon into the default chain (tag link; sqlite + file storages), {} requests per run",
        requests
    );
    println!(
        "{:<6} {:>8} {:>12} {:>10} {:>10} {:>14}",
        "set", "clients", "posts/s", "p50", "p99", "stored/s"
    );
    let mut one_client_5kb_p50 = None;
    // `cargo xtask bench api -- api-only` skips the end-to-end runs; `-- broker-only` runs only
    // the broker writes.
    let mode = |name: &str| std::env::args().any(|a| a == name);
    let broker_only = mode("broker-only");
    let end_to_end = !mode("api-only") && !broker_only;
    // `VCON_BENCH_API_SETS=5kb` (or `fake`, `cat1`, a comma-separated list) runs only those
    // documents' rows.
    let sets = std::env::var("VCON_BENCH_API_SETS").unwrap_or_else(|_| "5kb,fake,cat1".into());
    let chosen = |name: &str| sets.split(',').any(|s| s.trim() == name);
    for (name, sources, count) in [
        ("5kb", vec![five_kb.clone()], requests),
        ("fake", fake.clone(), requests),
        ("cat1", cat1(), (requests / 10).max(50)),
    ]
    .into_iter()
    .filter(|(name, ..)| end_to_end && chosen(name))
    {
        for &clients in &client_counts {
            let figures = run(with_fresh_uuids(&sources, count), clients);
            if name == "5kb" && clients == 1 {
                one_client_5kb_p50 = Some(figures.p50);
            }
            println!(
                "{:<6} {:>8} {:>12.0} {:>10} {:>10} {:>14.0}",
                name,
                clients,
                figures.posts_per_s,
                micros(figures.p50),
                micros(figures.p99),
                figures.stored_per_s
            );
        }
    }
    // The API alone, and the same load on another server for comparison
    // (`VCON_BENCH_COMPARE_URL`, e.g. the Python stand-in in benches/python_baseline/).
    if !broker_only {
        let compare = std::env::var("VCON_BENCH_COMPARE_URL").ok();
        let rounds = env_count("VCON_BENCH_ROUNDS", 1).max(1);
        for (name, label, sources, count) in [
            ("5kb", "the 5 KB vCon", vec![five_kb.clone()], requests),
            // The issue's "fake set": each request the next of the 601 (1-10 KB), round robin.
            (
                "fake",
                "the 601 fake vCons (1-10 KB)",
                fake.clone(),
                requests,
            ),
            // Half as many cat1s as 5 KB posts (1,500 by default): a run of a few hundred
            // measured mostly a fresh process growing its heap and the page cache taking its
            // first pages, which a server posted to all day does not see.
            ("cat1", "cat1 (270 KB)", cat1(), (requests / 2).max(50)),
        ] {
            if chosen(name) {
                api_only_set(
                    label,
                    &sources,
                    count,
                    &client_counts,
                    compare.as_deref(),
                    rounds,
                );
            }
        }
        // The floor under every row: one client's round trip to a route that does nothing.
        let host = Host::start(API_ONLY_CONFIG);
        let mut health = Poster::connect(&format!("{}/api/health", host.base));
        let mut times: Vec<Duration> = (0..requests)
            .map(|_| {
                let sent = Instant::now();
                assert_eq!(health.get(), 200);
                sent.elapsed()
            })
            .collect();
        times.sort();
        let total: Duration = times.iter().sum();
        println!(
            "floor: GET /api/health, 1 client: {:.0} requests/s, p50 {}",
            times.len() as f64 / total.as_secs_f64(),
            micros(percentile(&times, 0.5))
        );
        drop(host);
    }
    println!(
        "\nBroker writes: Broker::ingest of one vCon per commit, in process, as `run` opens it"
    );
    println!(
        "{:<10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10}",
        "vCon", "commits", "p50", "mean", "p99", "max", "WAL pages", "disk"
    );
    let five_kb_writes = broker_writes(&five_kb, requests * 5);
    broker_write_row("5 KB", &five_kb_writes);
    broker_write_row("cat1", &broker_writes(&cat1()[0], requests));
    let broker = percentile(&five_kb_writes.times, 0.5);
    if let Some(http) = one_client_5kb_p50 {
        println!(
            "5 KB vCon ({} bytes): broker write p50 {}, POST /vcon p50 {} (1 client): the API adds {}",
            five_kb.len(),
            micros(broker),
            micros(http),
            micros(http.saturating_sub(broker))
        );
    }
    print_stolen(ticks_before);
    SCRATCH.lock().unwrap().clear();
}
