//! The API's group commit against a real embedded broker, with requests cancelled while they
//! wait (a client that hangs up): the queue keeps moving, and what was acknowledged is stored.

use std::sync::Arc;
use std::time::Duration;

use vcon_host::api::group_commit::{GroupCommit, Ingest};
use vcon_host::broker::{Broker, HotVcon, SqliteBroker};

fn ingest(i: usize) -> Ingest {
    let uuid = format!("00000000-0000-4000-8000-{i:012}");
    let json = format!(r#"{{"vcon":"0.3.0","uuid":"{uuid}","created_at":"2025-01-01T00:00:00Z"}}"#);
    Ingest {
        vcon: HotVcon::from_json(json.into_bytes().into(), 0).unwrap(),
        lists: vec!["in".to_owned()],
        ttl: None,
    }
}

#[test]
fn cancelled_waiters_never_stall_the_queue_and_acknowledged_vcons_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let broker: Arc<dyn Broker> =
        Arc::new(SqliteBroker::open_for_run(&dir.path().join("broker.sqlite")).unwrap());
    let commit = Arc::new(GroupCommit::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
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
