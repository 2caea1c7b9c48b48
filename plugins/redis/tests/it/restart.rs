//! Redis restarted under the storage, on a private redis-server of the test's own (never the
//! machine's server): pooled connections are replaced, calls while it is down answer
//! `UNAVAILABLE` at once with a message saying what to check, and nothing acknowledged is lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plugin_loader::ErrorKind;
use serde_json::json;

use crate::fixtures::{fake_docs, new_uuid, open, Doc, OwnServer};

const SAVES: usize = 2_000;
const THREADS: usize = 2;

#[test]
fn a_restart_during_two_thousand_saves_loses_nothing() {
    let Some(mut own) = OwnServer::start() else {
        return;
    };
    let storage = open(&json!({
        "redis_url": own.url(),
        "prefix": "restart",
        "pool_size": 4,
        "connect_timeout": 1,
        "command_timeout": 5,
    }));
    let fake = fake_docs(usize::MAX);
    let docs: Vec<Doc> = (0..SAVES)
        .map(|i| fake[i % fake.len()].with_uuid(&new_uuid()))
        .collect();
    let done = AtomicUsize::new(0);
    let unavailable = AtomicUsize::new(0);

    std::thread::scope(|scope| {
        let own = &mut own;
        let done_ref = &done;
        let restarter = scope.spawn(move || {
            while done_ref.load(Ordering::Relaxed) < SAVES / 10 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let at = done_ref.load(Ordering::Relaxed);
            own.kill();
            // Down long enough for saves to find it down.
            std::thread::sleep(Duration::from_millis(300));
            own.run();
            eprintln!(
                "restart test: killed redis-server after {at} saves, back after {}",
                done_ref.load(Ordering::Relaxed)
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
                                std::thread::sleep(pause);
                                pause = (pause * 2).min(Duration::from_millis(500));
                            }
                            Err(err) => panic!("saving {} failed for good: {err}", doc.uuid),
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    // Paced, so the restart lands in the middle of the run.
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        restarter.join().unwrap();
    });

    let retried = unavailable.load(Ordering::Relaxed);
    eprintln!("restart test: {retried} saves answered UNAVAILABLE and were retried");
    assert!(retried > 0, "no save saw the restart");
    // Every acknowledged save survived (the server fsyncs its append-only file per write).
    assert_eq!(storage.count().unwrap(), SAVES as u64);
    let uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    let got = storage.get_many(&uuids).unwrap();
    assert!(got.iter().all(Option::is_some));
}

#[test]
fn stale_connections_are_replaced_without_a_failed_call() {
    let Some(mut own) = OwnServer::start() else {
        return;
    };
    let storage = open(&json!({
        "redis_url": own.url(),
        "prefix": "stale",
        "pool_size": 4,
        "connect_timeout": 2,
    }));
    // Fill the pool: four threads saving at once open four connections.
    let docs: Vec<Doc> = (0..40).map(|_| Doc::synthetic()).collect();
    std::thread::scope(|scope| {
        for part in docs.chunks(10) {
            let storage = &storage;
            scope.spawn(move || {
                for doc in part {
                    storage.save(&doc.record()).unwrap();
                }
            });
        }
    });
    let pooled = storage.status().unwrap()["pool"]["connections"]
        .as_u64()
        .unwrap();
    assert!(pooled >= 2, "only {pooled} pooled connections");

    // Restart while nothing is running: every pooled connection is now dead.
    own.kill();
    own.run();

    // The first calls find dead connections, and must not fail because of them.
    for doc in &docs[..10] {
        assert!(storage.get(&doc.uuid).unwrap().is_some());
        storage.save(&Doc::synthetic().record()).unwrap();
    }
}

#[test]
fn while_redis_is_down_calls_fail_at_once_then_recover() {
    let Some(mut own) = OwnServer::start() else {
        return;
    };
    let port = own.port;
    let storage = open(&json!({
        "redis_url": own.url(),
        "prefix": "down",
        "pool_size": 2,
        "connect_timeout": 2,
    }));
    let doc = Doc::synthetic();
    storage.save(&doc.record()).unwrap();
    own.kill();

    for _ in 0..5 {
        let started = Instant::now();
        let err = storage.save(&doc.record()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
        assert!(err.is_retryable());
        assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.message.contains("is Redis running"), "{err}");
        // Not the 2 s of connect_timeout: the storage knows Redis is down.
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        let err = storage.get(&doc.uuid).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
    }

    own.run();
    // The pool reconnects by itself (it retries at most connect_timeout / 2 apart).
    let started = Instant::now();
    loop {
        match storage.save(&doc.record()) {
            Ok(()) => break,
            Err(err) => {
                assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "still failing after Redis came back: {err}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    eprintln!("recovered {:?} after Redis came back", started.elapsed());
    assert!(storage.get(&doc.uuid).unwrap().is_some());
}
