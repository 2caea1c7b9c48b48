//! The API's group commit against a real embedded broker, with requests cancelled while they
//! wait (a client that hangs up): the queue keeps moving, and what was acknowledged is stored.

use std::future::Future;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use vcon_host::api::group_commit::{GroupCommit, Ingest};
use vcon_host::api::poll_thread::PollThread;
use vcon_host::broker::{BackgroundWork, Broker, HotVcon, SqliteBroker};

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

/// Where the group commit writes its batches: both ways keep the same promises.
#[derive(Debug, Clone, Copy, PartialEq)]
enum WriteOn {
    /// On the leader's own thread (a broker across the network, or no writer thread).
    Leader,
    /// On the writer thread `run` starts for the embedded broker.
    WriterThread,
}

fn group_commit(on: WriteOn) -> GroupCommit {
    match on {
        WriteOn::Leader => GroupCommit::default(),
        WriteOn::WriterThread => GroupCommit::with_writer(
            PollThread::start(
                "vcon-api-writer",
                Duration::from_millis(1),
                BackgroundWork::default(),
            )
            .unwrap(),
        ),
    }
}

/// Starts request `i` through `commit` on `runtime`: a task the test can await or abort.
fn post(
    runtime: &tokio::runtime::Runtime,
    broker: &Arc<dyn Broker>,
    commit: &Arc<GroupCommit>,
    i: usize,
) -> tokio::task::JoinHandle<Result<(), vcon_host::api::ApiError>> {
    let (broker, commit) = (Arc::clone(broker), Arc::clone(commit));
    runtime.spawn(async move { commit.ingest(&broker, ingest(i)).await })
}

/// Two tests of `$check`: one writing on the leader, one on the writer thread.
macro_rules! both_ways {
    ($check:ident: $on_leader:ident, $on_writer:ident) => {
        #[test]
        fn $on_leader() {
            $check(WriteOn::Leader);
        }

        #[test]
        fn $on_writer() {
            $check(WriteOn::WriterThread);
        }
    };
}

/// A real embedded broker whose write of [`GATE`] is under way and held open (the first
/// request's batch), with the group commit and runtime the test goes on with.
struct GateHeld {
    _dir: tempfile::TempDir,
    broker: Arc<dyn Broker>,
    commit: Arc<GroupCommit>,
    runtime: tokio::runtime::Runtime,
    /// The gate's own request.
    gate: tokio::task::JoinHandle<Result<(), vcon_host::api::ApiError>>,
    /// Lets the gate's write go on.
    release: mpsc::Sender<()>,
}

impl GateHeld {
    /// Posts [`GATE`] through a group commit writing `on`, and answers once its batch is being
    /// written: each later step waits for the one before, so a slow machine cannot reorder them.
    fn start(on: WriteOn) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (entered, gate_entered) = mpsc::channel();
        let (release, held) = mpsc::channel();
        let broker: Arc<dyn Broker> = Arc::new(PanicsOnPoison {
            inner: SqliteBroker::open_for_run(&dir.path().join("broker.sqlite")).unwrap(),
            entered: Mutex::new(entered),
            release: Mutex::new(held),
        });
        let commit = Arc::new(group_commit(on));
        let runtime = runtime();
        let gate = post(&runtime, &broker, &commit, GATE);
        gate_entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the gate's batch was never written");
        Self {
            _dir: dir,
            broker,
            commit,
            runtime,
            gate,
            release,
        }
    }

    /// Starts request `i` (see [`post`]).
    fn post(&self, i: usize) -> tokio::task::JoinHandle<Result<(), vcon_host::api::ApiError>> {
        post(&self.runtime, &self.broker, &self.commit, i)
    }
}

both_ways!(
    cancelled_waiters_never_stall_the_queue:
    cancelled_waiters_never_stall_the_queue_and_acknowledged_vcons_are_stored_on_the_leader,
    cancelled_waiters_never_stall_the_queue_and_acknowledged_vcons_are_stored_on_the_writer
);

fn cancelled_waiters_never_stall_the_queue(on: WriteOn) {
    let dir = tempfile::tempdir().unwrap();
    let broker: Arc<dyn Broker> =
        Arc::new(SqliteBroker::open_for_run(&dir.path().join("broker.sqlite")).unwrap());
    let commit = Arc::new(group_commit(on));
    let runtime = runtime();
    let acknowledged: Vec<usize> = runtime.block_on(async {
        let tasks: Vec<_> = (0..600)
            .map(|i| {
                let (broker, commit) = (Arc::clone(&broker), Arc::clone(&commit));
                tokio::spawn(async move {
                    let request = commit.ingest(&broker, ingest(i));
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
            commit.ingest(&broker, ingest(10_000)),
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

both_ways!(
    a_leader_dropped_while_it_yields:
    a_leader_dropped_while_it_yields_hands_the_lead_on_and_writes_nothing_on_the_leader,
    a_leader_dropped_while_it_yields_hands_the_lead_on_and_writes_nothing_on_the_writer
);

fn a_leader_dropped_while_it_yields(on: WriteOn) {
    let dir = tempfile::tempdir().unwrap();
    let broker: Arc<dyn Broker> =
        Arc::new(SqliteBroker::open_for_run(&dir.path().join("broker.sqlite")).unwrap());
    let commit = group_commit(on);
    let runtime = runtime();
    runtime.block_on(async {
        // Polled once, the first request takes the lead and yields before writing; its client
        // hangs up there.
        let mut leader = Box::pin(commit.ingest(&broker, ingest(1)));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            leader.as_mut().poll(&mut cx).is_pending(),
            "a leader yields before it writes"
        );
        drop(leader);
        tokio::time::timeout(Duration::from_secs(5), commit.ingest(&broker, ingest(2)))
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

both_ways!(
    a_write_that_panics:
    a_write_that_panics_fails_its_batch_with_an_answer_and_the_queue_moves_on_on_the_leader,
    a_write_that_panics_fails_its_batch_with_an_answer_and_the_queue_moves_on_on_the_writer
);

fn a_write_that_panics(on: WriteOn) {
    // The gate leads first and holds its write open; the others queue behind it and form the
    // next batch, which holds the poisoned vCon.
    let GateHeld {
        _dir,
        broker,
        commit,
        runtime,
        gate,
        release: release_gate,
    } = GateHeld::start(on);
    let behind: Vec<_> = (GATE + 1..=20)
        .map(|i| post(&runtime, &broker, &commit, i))
        .collect();
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
    // On the leader's thread the panic unwinds through the leader's request; on the writer
    // thread it is caught there, and the leader is answered like the others.
    let leaders_panicking = usize::from(on == WriteOn::Leader);
    assert_eq!(
        panicked, leaders_panicking,
        "only the leader of the poisoned batch panics, and only when it writes"
    );
    // The lead was handed on when the leader unwound (or was answered): a new request is
    // answered at once.
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), commit.ingest(&broker, ingest(100)))
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

#[test]
fn a_leader_dropped_while_the_writer_thread_writes_its_batch_leaves_the_queue_moving_and_the_batch_stored(
) {
    // The gate's batch is on the writer thread, held open; its client hangs up there.
    let mut held = GateHeld::start(WriteOn::WriterThread);
    held.gate.abort();
    let cancelled = held.runtime.block_on(&mut held.gate);
    assert!(cancelled.unwrap_err().is_cancelled());
    // Requests that come after queue behind the gate's batch on the writer thread.
    let behind: Vec<_> = (GATE + 1..=8).map(|i| held.post(i)).collect();
    held.release.send(()).unwrap();
    held.runtime.block_on(async {
        for task in behind {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("a request behind the dropped leader was never answered")
                .unwrap()
                .expect("a request behind the dropped leader failed");
        }
    });
    let queued: std::collections::BTreeSet<String> = held
        .broker
        .entries("in", 100)
        .unwrap()
        .into_iter()
        .map(|e| e.uuid)
        .collect();
    // The gate's vCon too: its batch was handed over before its client left (never
    // acknowledged, so storing it loses nothing; posting it again is idempotent).
    let expected: std::collections::BTreeSet<String> = (GATE..=8)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    assert_eq!(queued, expected);
}
