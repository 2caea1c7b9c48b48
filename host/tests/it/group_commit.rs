//! The API's group commit against a real embedded broker, with requests cancelled while they
//! wait (a client that hangs up): the queue keeps moving, and what was acknowledged is stored.

use std::future::Future;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use vcon_host::api::group_commit::{GroupCommit, Ingest};
use vcon_host::broker::{Broker, HotVcon, SqliteBroker};

use crate::faulty_broker::{PanicsOnPoison, GATE};

fn ingest(i: usize) -> Ingest {
    let uuid = format!("00000000-0000-4000-8000-{i:012}");
    let json = format!(r#"{{"vcon":"0.3.0","uuid":"{uuid}","created_at":"2025-01-01T00:00:00Z"}}"#);
    Ingest {
        vcon: HotVcon::from_json(json.into_bytes().into(), 0).unwrap(),
        lists: vec!["in".to_owned()],
        ttl: None,
    }
}

/// Two worker threads, so requests queue while a leader writes on the other one. (The API's
/// runtime has one worker, where requests queue while a leader yields before it writes.)
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn cancelled_waiters_never_stall_the_queue_and_acknowledged_vcons_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let broker: Arc<dyn Broker> =
        Arc::new(SqliteBroker::open_for_run(&dir.path().join("broker.sqlite")).unwrap());
    let commit = Arc::new(GroupCommit::default());
    let runtime = runtime();
    let acknowledged: Vec<usize> = runtime.block_on(async {
        let tasks: Vec<_> = (0..600)
            .map(|i| {
                let (broker, commit) = (Arc::clone(&broker), Arc::clone(&commit));
                tokio::spawn(async move {
                    let request = commit.ingest(&*broker, ingest(i));
                    if i % 3 != 0 {
                        return request.await.is_ok().then_some(i);
                    }
                    // Every third request hangs up after one turn of the scheduler: dropped
                    // while queued, or just after the lead was handed to it.
                    tokio::select! {
                        biased;
                        () = tokio::task::yield_now() => None,
                        done = request => done.is_ok().then_some(i),
                    }
                })
            })
            .collect();
        let answers = async {
            let mut acknowledged = Vec::new();
            for task in tasks {
                acknowledged.extend(task.await.unwrap());
            }
            acknowledged
        };
        tokio::time::timeout(Duration::from_secs(30), answers)
            .await
            .expect("requests still unanswered after 30 s: a lead was lost with a dropped waiter")
    });
    assert!(
        acknowledged.len() >= 400,
        "only {} of the 400 patient requests were answered",
        acknowledged.len()
    );
    // After all that, a new request is answered at once: no lead was lost with a dropped waiter.
    runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            commit.ingest(&*broker, ingest(10_000)),
        )
        .await
        .expect("the queue stalled behind a cancelled request")
        .unwrap();
    });
    let queued: std::collections::BTreeSet<String> = broker
        .entries("in", 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.uuid)
        .collect();
    for i in acknowledged {
        let uuid = format!("00000000-0000-4000-8000-{i:012}");
        assert!(
            queued.contains(&uuid),
            "{uuid} was acknowledged but not queued"
        );
    }
}

#[test]
fn a_leader_dropped_while_it_yields_hands_the_lead_on_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker: Arc<dyn Broker> =
        Arc::new(SqliteBroker::open_for_run(&dir.path().join("broker.sqlite")).unwrap());
    let commit = GroupCommit::default();
    let runtime = runtime();
    runtime.block_on(async {
        // Polled once, the first request takes the lead and yields before writing; its client
        // hangs up there.
        let mut leader = Box::pin(commit.ingest(&*broker, ingest(1)));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            leader.as_mut().poll(&mut cx).is_pending(),
            "a leader yields before it writes"
        );
        drop(leader);
        tokio::time::timeout(Duration::from_secs(5), commit.ingest(&*broker, ingest(2)))
            .await
            .expect("the lead was lost with the dropped leader: the next request stalled")
            .unwrap();
    });
    let stored = broker.get_vcons(&["00000000-0000-4000-8000-000000000001"]);
    assert!(
        stored.unwrap()[0].is_none(),
        "the dropped leader's vCon was never acknowledged, so it must not have been written"
    );
    assert_eq!(
        broker.len("in").unwrap(),
        1,
        "only the second request is queued"
    );
}

#[test]
fn a_leader_that_panics_fails_its_batch_with_an_answer_and_the_queue_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (entered, gate_entered) = mpsc::channel();
    let (release_gate, release) = mpsc::channel();
    let broker: Arc<dyn Broker> = Arc::new(PanicsOnPoison {
        inner: SqliteBroker::open_for_run(&dir.path().join("broker.sqlite")).unwrap(),
        entered: Mutex::new(entered),
        release: Mutex::new(release),
    });
    let commit = Arc::new(GroupCommit::default());
    let runtime = runtime();
    let spawn = |i: usize| {
        let (broker, commit) = (Arc::clone(&broker), Arc::clone(&commit));
        runtime.spawn(async move { commit.ingest(&*broker, ingest(i)).await })
    };
    // The gate leads first and holds its write open; the others queue behind it and form the
    // next batch, which holds the poisoned vCon. Each step waits for the one before it, so a
    // slow machine cannot reorder them.
    let gate = spawn(GATE);
    gate_entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the gate's batch was never written");
    let behind: Vec<_> = (GATE + 1..=20).map(spawn).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while commit.queued() < behind.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {} requests queued behind the gate",
            commit.queued(),
            behind.len()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    release_gate.send(()).unwrap();
    let outcomes = runtime.block_on(async {
        let gate = gate.await.unwrap();
        let mut outcomes = Vec::new();
        for task in behind {
            outcomes.push(tokio::time::timeout(Duration::from_secs(10), task).await);
        }
        (gate, outcomes)
    });
    let (gate, behind) = outcomes;
    assert!(gate.is_ok(), "the gate's own batch was fine: {gate:?}");
    let mut panicked = 0;
    for outcome in behind {
        match outcome.expect("a request of the poisoned batch was never answered") {
            Err(join) => {
                assert!(join.is_panic());
                panicked += 1;
            }
            Ok(Ok(())) => panic!("a request of the poisoned batch was acknowledged"),
            Ok(Err(err)) => {
                assert_eq!(err.status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                assert!(
                    err.detail.to_string().contains("post it again"),
                    "{:?}",
                    err.detail
                );
            }
        }
    }
    assert_eq!(panicked, 1, "only the leader of the poisoned batch panics");
    // The lead was handed on when the leader unwound: a new request is answered at once.
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), commit.ingest(&*broker, ingest(100)))
            .await
            .expect("the queue stalled behind the panicked leader")
            .unwrap();
    });
    let queued: Vec<String> = broker
        .entries("in", 100)
        .unwrap()
        .into_iter()
        .map(|e| e.uuid)
        .collect();
    assert_eq!(
        queued,
        vec![
            "00000000-0000-4000-8000-000000000001".to_owned(),
            "00000000-0000-4000-8000-000000000100".to_owned()
        ],
        "only the acknowledged vCons are stored"
    );
}
