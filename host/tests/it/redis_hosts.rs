//! Two `vcon-host run` processes sharing one Redis broker: they split the work, every vCon ends
//! up stored exactly once as a row, and when one is killed (SIGKILL, mid-batch) the other takes
//! back what it was working on once its heartbeat lapses: nothing is lost.
//!
//! The chain's storage is the sqlite plugin on one SQLite file both processes write (WAL), whose
//! `id` primary key makes "exactly once as a row" checkable. Each host serves its API on a port
//! of its own (`--bind 127.0.0.1:0`), and its `vcon_host_vcons_processed_total` counter says how
//! much of the work it did.
//!
//! Redis logical databases 13 and 14 of 127.0.0.1:6379 (`FLUSHDB` first). Without a Redis there
//! the tests print why, loudly, and pass, unless `VCON_REQUIRE_SERVICES=1` (CI), where they fail.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{plugin, run, stop, Scratch};

const VCONS: usize = 10_000;

/// A connection to one Redis database, with the few reply shapes these tests read.
struct Resp {
    con: redis::Connection,
}

impl Resp {
    fn connect(db: u8) -> Result<Self, String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:6379/{db}"))
            .map_err(|e| e.to_string())?;
        let con = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .map_err(|e| format!("no Redis at 127.0.0.1:6379: {e}"))?;
        Ok(Self { con })
    }

    fn query<T: redis::FromRedisValue>(&mut self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.con)
            .unwrap_or_else(|e| panic!("Redis {args:?}: {e}"))
    }

    fn command(&mut self, args: &[&str]) {
        self.query::<redis::Value>(args);
    }

    fn strings(&mut self, args: &[&str]) -> Vec<String> {
        self.query(args)
    }

    fn int(&mut self, args: &[&str]) -> i64 {
        self.query(args)
    }
}

/// Database `db`, emptied; `None` (after saying so) when Redis is not there.
fn redis_db(db: u8) -> Option<Resp> {
    match Resp::connect(db) {
        Ok(mut resp) => {
            resp.command(&["FLUSHDB"]);
            Some(resp)
        }
        Err(err) => {
            let message = format!("{err}: the two-host Redis tests did not run");
            if std::env::var("VCON_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{message} (VCON_REQUIRE_SERVICES=1, so this is a failure)");
            }
            eprintln!("\n*** SKIPPED: {message} ***\n");
            None
        }
    }
}

fn scratch(db: u8) -> Scratch {
    plugin("sqlite");
    Scratch::with_config(&format!(
        r#"
host:
  broker: redis://127.0.0.1:6379/{db}
  workers: 2
  batch_size: 20
  retry: {{ max_attempts: 20, initial_backoff: 10ms, max_backoff: 200ms }}
storages:
  sqlite:
    module: storage.sqlite
    options: {{ path: ./data/vcons.sqlite, busy_timeout_ms: 30000 }}
links: {{}}
chains:
  main:
    links: []
    storages: [sqlite]
    ingress_lists: [in]
    egress_lists: [out]
"#
    ))
}

/// Small valid vCons with distinct uuids, one file each; answers their uuids.
fn write_vcons(dir: &Path, count: usize) -> BTreeSet<String> {
    std::fs::create_dir_all(dir).unwrap();
    (0..count)
        .map(|i| {
            let uuid = format!("00000000-0000-4000-8000-{i:012}");
            let doc = format!(
                r#"{{"vcon":"0.0.1","uuid":"{uuid}","created_at":"2024-05-01T10:00:00Z","subject":"call {i}","parties":[{{"tel":"+1555{i:07}"}},{{"mailto":"agent{}@example.com"}}],"dialog":[],"analysis":[],"attachments":[]}}"#,
                i % 7
            );
            std::fs::write(dir.join(format!("{i}.json")), doc).unwrap();
            uuid
        })
        .collect()
}

/// One running host: its process, its stderr file, its API address. Killed if a failing test
/// drops it still running.
struct Host {
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
    api: SocketAddr,
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Host {
    fn start(scratch: &Scratch, name: &str) -> Self {
        let log = scratch.path().join(format!("{name}.stderr"));
        let child = scratch
            .host()
            .args(["run", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut host = Self {
            pid: child.id(),
            child: Some(child),
            log,
            api: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let api = loop {
            let text = host.stderr();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.split("API on http://").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|addr| addr.parse().ok())
            {
                break addr;
            }
            assert!(
                Instant::now() < deadline,
                "host {name} did not start its API:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        host.api = api;
        host
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        if let Some(child) = self.child.take() {
            stop(child);
        }
    }

    /// SIGKILL: no chance to give anything back.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many vCons this host stored (`vcon_host_vcons_processed_total`, outcome stored).
    fn stored(&self) -> u64 {
        let text = ureq::get(format!("http://{}/metrics", self.api))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with("vcon_host_vcons_processed_total{")
                    && l.contains(r#"outcome="stored""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    fn pid(&self) -> u32 {
        self.pid
    }
}

/// Sends `kill -{name}` to `pid`.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// The uuids in the processing lists of the workers whose owner contains `marker`.
fn held_by(redis: &mut Resp, marker: &str) -> Vec<String> {
    redis
        .strings(&["HKEYS", "vcon-host:processing"])
        .into_iter()
        .filter(|key| key.contains(marker))
        .flat_map(|key| redis.strings(&["LRANGE", &key, "0", "-1"]))
        .collect()
}

fn sqlite_ids(scratch: &Scratch) -> Vec<String> {
    let path = scratch.path().join("data/vcons.sqlite");
    if !path.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let Ok(mut stmt) = conn.prepare("SELECT id FROM vcons") else {
        return Vec::new();
    };
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn rows(scratch: &Scratch) -> usize {
    sqlite_ids(scratch).len()
}

/// Every uuid exactly once as a row, and nothing else.
fn assert_stored_exactly_once(scratch: &Scratch, expected: &BTreeSet<String>) {
    let ids = sqlite_ids(scratch);
    let distinct: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), distinct.len(), "a uuid stored twice as a row");
    assert_eq!(
        distinct.len(),
        expected.len(),
        "stored {} of {}",
        distinct.len(),
        expected.len()
    );
    assert!(&distinct == expected, "other uuids stored than ingested");
}

/// Nothing left queued, claimed or dead-lettered.
fn assert_broker_drained(redis: &mut Resp) {
    assert_eq!(redis.int(&["LLEN", "in"]), 0, "ingress list not empty");
    let dead: Vec<String> = ["DLQ:in", "DLQ:storage:sqlite"]
        .iter()
        .filter(|l| redis.int(&["LLEN", l]) > 0)
        .map(|l| (*l).to_owned())
        .collect();
    assert!(dead.is_empty(), "dead letters in {dead:?}");
    assert_eq!(
        redis.int(&["LLEN", "out"]),
        VCONS as i64,
        "each vCon pushed to egress once"
    );
}

#[test]
fn two_hosts_on_one_redis_share_the_work_and_store_each_vcon_once() {
    let Some(mut redis) = redis_db(13) else {
        return;
    };
    let scratch = scratch(13);
    let expected = write_vcons(&scratch.path().join("incoming"), VCONS);
    // One after the other, so the storage's schema is created once.
    let a = Host::start(&scratch, "a");
    let b = Host::start(&scratch, "b");

    let started = Instant::now();
    let (code, out) = run(scratch
        .host()
        .arg("ingest")
        .arg(scratch.path().join("incoming")));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("accepted {VCONS}, refused 0")),
        "{out}"
    );
    scratch.wait_for("10,000 rows", 90, || rows(&scratch) >= VCONS);
    let took = started.elapsed();

    let (by_a, by_b) = (a.stored(), b.stored());
    eprintln!(
        "two hosts stored {VCONS} vCons in {took:.1?} ({:.0}/s, ingest included): host a {by_a}, host b {by_b}",
        VCONS as f64 / took.as_secs_f64()
    );
    assert!(by_a > 0 && by_b > 0, "both hosts work: a {by_a}, b {by_b}");
    assert_eq!(
        by_a + by_b,
        VCONS as u64,
        "no vCon processed twice without a crash"
    );
    let (a_log, b_log) = (a.stderr(), b.stderr());
    a.stop();
    b.stop();

    assert_stored_exactly_once(&scratch, &expected);
    assert_broker_drained(&mut redis);
    assert!(
        redis.strings(&["HKEYS", "vcon-host:processing"]).is_empty(),
        "a stopped host leaves no processing list registered"
    );
    assert!(
        redis.strings(&["KEYS", "vcon-host:heartbeat:*"]).is_empty(),
        "a stopped host withdraws its heartbeat"
    );
    for log in [a_log, b_log] {
        assert!(!log.contains("ERROR"), "{log}");
    }
}

#[test]
fn a_host_killed_mid_run_loses_nothing_the_other_takes_its_claims_back() {
    let Some(mut redis) = redis_db(14) else {
        return;
    };
    let scratch = scratch(14);
    let expected = write_vcons(&scratch.path().join("incoming"), VCONS);
    let victim = Host::start(&scratch, "victim");
    let survivor = Host::start(&scratch, "survivor");

    let ingest = scratch
        .host()
        .arg("ingest")
        .arg(scratch.path().join("incoming"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the victim once it has done some of the work, well before the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let by_victim = loop {
        let done = victim.stored();
        if done >= 300 {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "the victim stored only {done} in a minute"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // Kill it while it holds a claim, so the kill lands mid-batch and not in the moment
    // between two batches: once it is seen holding one, it is frozen (SIGSTOP) and looked at
    // again, and let go on if it finished the batch in between.
    let marker = format!(":{}:", victim.pid());
    let held = loop {
        if !held_by(&mut redis, &marker).is_empty() {
            signal(victim.pid(), "STOP");
            let held = held_by(&mut redis, &marker);
            if !held.is_empty() {
                break held;
            }
            signal(victim.pid(), "CONT");
        }
        assert!(
            Instant::now() < deadline,
            "the victim never held a claim when looked at"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    let mut victim = victim;
    victim.kill();
    let killed_at = Instant::now();
    let stored_at_kill = rows(&scratch);
    assert!(
        stored_at_kill < VCONS * 3 / 4,
        "the kill came too late to test anything ({stored_at_kill} stored)"
    );
    eprintln!(
        "killed the victim after it stored {by_victim}; {stored_at_kill} rows in all; it held {} uuids",
        held.len()
    );

    let output = ingest.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains(&format!("accepted {VCONS}, refused 0")),
        "{out}"
    );

    // The survivor finishes everything else, then takes the victim's claims back once its
    // heartbeat (30 s) has lapsed, at its next requeue pass (every 10 s). Both are waited for:
    // the kill may land after the held batch reached the storage and before its claims were
    // let go, and then every row is there before the claims are taken back (and stored again,
    // at least once).
    let taken_back = || survivor.stderr().contains("put back");
    scratch.wait_for("all 10,000 rows, and the claims taken back", 100, || {
        rows(&scratch) >= VCONS && taken_back()
    });
    let recovered_after = killed_at.elapsed();
    let ids: BTreeSet<String> = sqlite_ids(&scratch).into_iter().collect();
    let lost: Vec<&String> = held.iter().filter(|u| !ids.contains(*u)).collect();
    assert!(lost.is_empty(), "{} held uuids never stored", lost.len());
    eprintln!("all stored {recovered_after:.1?} after the kill");
    assert!(
        recovered_after > Duration::from_secs(15),
        "recovered before the victim's heartbeat could lapse ({recovered_after:?}): by what?"
    );
    let by_survivor = survivor.stored();
    assert!(by_survivor > 0);
    survivor.stop();

    assert_stored_exactly_once(&scratch, &expected);
    assert_broker_drained_after_crash(&mut redis);
}

/// As [`assert_broker_drained`], except egress: a batch the victim stored but had not finished
/// is processed again, and pushed to egress again (at-least-once).
fn assert_broker_drained_after_crash(redis: &mut Resp) {
    assert_eq!(redis.int(&["LLEN", "in"]), 0, "ingress list not empty");
    for list in ["DLQ:in", "DLQ:storage:sqlite"] {
        assert_eq!(redis.int(&["LLEN", list]), 0, "dead letters in {list}");
    }
    let egress = redis.int(&["LLEN", "out"]);
    assert!(egress >= VCONS as i64, "egress {egress}");
    assert!(
        redis.strings(&["HKEYS", "vcon-host:processing"]).is_empty(),
        "the dead host's processing lists are unregistered"
    );
}
