//! PostgreSQL restarted in the middle of 2,000 saves: the pool replaces the dead connections,
//! the failed calls answer `UNAVAILABLE`, this test retries them as the host's retry policy does,
//! and every row is there afterwards.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plugin_loader::ErrorKind;
use serde_json::json;

use crate::fixtures::{fake_docs, new_uuid, open, reachable, server_exclusive, with, Direct, Doc};

const SAVES: usize = 2_000;
const THREADS: usize = 2;

/// The cluster version under /etc/postgresql (Debian's layout), when `pg_ctlcluster` exists.
fn cluster_version() -> Option<String> {
    let has_ctl = Command::new("pg_ctlcluster").arg("--help").output().is_ok();
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| {
            Path::new("/etc/postgresql")
                .join(name)
                .join("main")
                .is_dir()
        })?;
    has_ctl.then_some(version)
}

fn pg_ctl(version: &str, action: &str) -> std::process::Output {
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", action])
        .output()
        .unwrap_or_else(|e| panic!("running pg_ctlcluster {action}: {e}"))
}

fn wait_until_reachable(limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if reachable() && Direct::try_connect().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Starts the server again when the test ends, whatever happened.
struct RunningAtTheEnd(String);

impl Drop for RunningAtTheEnd {
    fn drop(&mut self) {
        if !wait_until_reachable(Duration::from_secs(5)) {
            let out = pg_ctl(&self.0, "start");
            eprintln!(
                "restart test: started PostgreSQL again: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if !wait_until_reachable(Duration::from_secs(60)) {
                // Not a panic: this may run while the test is already unwinding.
                eprintln!("\n*** PostgreSQL did not come back after the restart test ***\n");
            }
        }
    }
}

fn start_time(direct: &Direct) -> String {
    direct
        .text("SELECT pg_postmaster_start_time()::text", &[])
        .unwrap()
}

#[test]
fn a_restart_during_two_thousand_saves_loses_nothing() {
    let Some(server) = server_exclusive() else {
        return;
    };
    let Some(version) = cluster_version() else {
        eprintln!("*** SKIPPED: no pg_ctlcluster or /etc/postgresql/*/main here to restart PostgreSQL ***");
        return;
    };
    let _running = RunningAtTheEnd(version.clone());
    let table = server.fresh_table();
    let storage = open(&with(
        server.options(&table.name),
        json!({"pool_size": 4, "connect_timeout": 2}),
    ));
    let started_before = start_time(&Direct::connect());

    let fake = fake_docs(usize::MAX);
    let docs: Vec<Doc> = (0..SAVES)
        .map(|i| fake[i % fake.len()].with_uuid(&new_uuid()))
        .collect();
    let done = AtomicUsize::new(0);
    let unavailable = AtomicUsize::new(0);

    std::thread::scope(|scope| {
        let restarter = scope.spawn(|| {
            while done.load(Ordering::Relaxed) < SAVES / 10 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let at = done.load(Ordering::Relaxed);
            let out = pg_ctl(&version, "restart");
            assert!(
                out.status.success(),
                "pg_ctlcluster restart failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!(
                "restart test: restarted PostgreSQL after {at} saves (now {})",
                done.load(Ordering::Relaxed)
            );
        });
        for part in docs.chunks(SAVES / THREADS) {
            let (storage, done, unavailable) = (&storage, &done, &unavailable);
            scope.spawn(move || {
                for doc in part {
                    // The host's retry policy: UNAVAILABLE is retried with back-off, for up
                    // to 30 s; anything else is a failure.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let mut pause = Duration::from_millis(50);
                    loop {
                        match storage.save(&doc.record()) {
                            Ok(()) => break,
                            Err(err)
                                if err.kind == ErrorKind::UNAVAILABLE
                                    && Instant::now() < deadline =>
                            {
                                if unavailable.fetch_add(1, Ordering::Relaxed) == 0 {
                                    eprintln!("restart test: first failure: {err}");
                                }
                                std::thread::sleep(err.retry_after.unwrap_or(pause).max(pause));
                                pause = (pause * 2).min(Duration::from_secs(1));
                            }
                            Err(err) => panic!("saving {} failed for good: {err}", doc.uuid),
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    // Paced (a run lasts over a second), so the restart lands in the middle of
                    // it even on a fast machine.
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        restarter.join().unwrap();
    });

    let direct = Direct::connect();
    assert_ne!(
        start_time(&direct),
        started_before,
        "the server was not restarted"
    );
    let retried = unavailable.load(Ordering::Relaxed);
    eprintln!("restart test: {retried} saves answered UNAVAILABLE and were retried");
    assert!(retried > 0, "no save saw the restart");
    assert_eq!(storage.count().unwrap(), SAVES as u64);
    let stored = direct.int(&format!("SELECT count(*) FROM \"{}\"", table.name), &[]);
    assert_eq!(stored, SAVES as i64);
    let uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    let got = storage.get_many(&uuids).unwrap();
    assert!(got.iter().all(Option::is_some));
}
