//! The embedded broker on a real SQLite file: at-least-once claims, atomic finish, recovery,
//! time to live, and the run lock.

use std::sync::Arc;
use std::time::Duration;

use vcon_host::broker::{Broker, BrokerError, DeadLetter, Finish, HotVcon, SqliteBroker};

fn hot(uuid: &str) -> HotVcon {
    HotVcon {
        uuid: uuid.to_owned(),
        json: Arc::from(format!(r#"{{"uuid":"{uuid}"}}"#).into_bytes()),
        created_at_us: 1_700_000_000_000_000,
        created_at_offset_s: 0,
        updated_at_us: 1_700_000_000_000_000,
        subject: None,
    }
}

fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn broker() -> (tempfile::TempDir, SqliteBroker) {
    let dir = tempfile::tempdir().unwrap();
    let broker = SqliteBroker::open(&dir.path().join("broker.sqlite")).unwrap();
    (dir, broker)
}

#[test]
fn claimed_items_stay_until_finished_and_finish_pushes_atomically() {
    let (_dir, broker) = broker();
    let vcons: Vec<HotVcon> = (0..5).map(|i| hot(&uuid(i))).collect();
    broker.ingest(&vcons, &["in".into()], None).unwrap();

    let lists = vec!["in".to_owned()];
    let first = broker.claim(&lists, "w1", 3).unwrap().unwrap();
    assert_eq!(
        first
            .items
            .iter()
            .map(|i| i.uuid.clone())
            .collect::<Vec<_>>(),
        [uuid(0), uuid(1), uuid(2)]
    );
    let second = broker.claim(&lists, "w2", 3).unwrap().unwrap();
    assert_eq!(
        second.items.len(),
        2,
        "claimed items are not handed out twice"
    );
    assert!(broker.claim(&lists, "w3", 3).unwrap().is_none());
    assert_eq!(
        broker.len("in").unwrap(),
        5,
        "claimed items stay in the list until finished"
    );

    let ids: Vec<i64> = first.items.iter().map(|i| i.id).collect();
    let finish = Finish {
        pushes: vec![("out".into(), uuid(0)), ("out".into(), uuid(1))],
        dead_letters: vec![DeadLetter {
            list: "DLQ:in".into(),
            uuid: uuid(2),
            note: "{}".into(),
        }],
    };
    broker.finish(&ids, &finish).unwrap();
    assert_eq!(broker.len("in").unwrap(), 2);
    assert_eq!(broker.len("out").unwrap(), 2);
    assert_eq!(broker.len("DLQ:in").unwrap(), 1);
    assert_eq!(
        broker.pop_back("out", 10).unwrap(),
        [uuid(1), uuid(0)],
        "RPOP order"
    );
}

#[test]
fn unfinished_claims_are_put_back_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    {
        let broker = SqliteBroker::open(&path).unwrap();
        broker
            .ingest(&[hot(&uuid(1)), hot(&uuid(2))], &["in".into()], None)
            .unwrap();
        broker
            .claim(&["in".into()], "dead-worker", 10)
            .unwrap()
            .unwrap();
    }
    let broker = SqliteBroker::open(&path).unwrap();
    assert!(broker.claim(&["in".into()], "w", 10).unwrap().is_none());
    assert_eq!(broker.requeue_unfinished().unwrap(), 2);
    let claim = broker.claim(&["in".into()], "w", 10).unwrap().unwrap();
    assert_eq!(claim.items.len(), 2);
    let got = broker.get_vcons(&[&uuid(1), &uuid(2)]).unwrap();
    assert!(got.iter().all(Option::is_some), "the hot copies survived");
}

#[test]
fn lists_are_claimed_in_priority_order() {
    let (_dir, broker) = broker();
    broker
        .ingest(&[hot(&uuid(1))], &["low".into()], None)
        .unwrap();
    broker
        .ingest(&[hot(&uuid(2))], &["high".into()], None)
        .unwrap();
    let claim = broker
        .claim(&["high".into(), "low".into()], "w", 10)
        .unwrap()
        .unwrap();
    assert_eq!(claim.list, "high");
    assert_eq!(claim.items[0].uuid, uuid(2));
}

#[test]
fn expiry_never_drops_a_vcon_that_still_waits_in_a_list() {
    let (_dir, broker) = broker();
    let ttl = Some(Duration::from_millis(1));
    broker
        .ingest(&[hot(&uuid(1))], &["in".into()], ttl)
        .unwrap();
    broker.ingest(&[hot(&uuid(2))], &[], ttl).unwrap();
    broker
        .ingest(&[hot(&uuid(3))], &["DLQ:in".into()], ttl)
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));

    assert_eq!(
        broker.purge_expired().unwrap(),
        2,
        "the unqueued and the dead-lettered copy go"
    );
    let got = broker.get_vcons(&[&uuid(1), &uuid(2), &uuid(3)]).unwrap();
    assert!(got[0].is_some(), "a queued vCon outlives its time to live");
    assert!(got[1].is_none());
    assert!(got[2].is_none());

    // Once its chain has finished it, it may expire.
    let claim = broker.claim(&["in".into()], "w", 1).unwrap().unwrap();
    broker
        .finish(&[claim.items[0].id], &Finish::default())
        .unwrap();
    assert_eq!(broker.purge_expired().unwrap(), 1);
}

#[test]
fn a_second_run_on_one_broker_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    let _running = SqliteBroker::open_for_run(&path).unwrap();
    let err = SqliteBroker::open_for_run(&path).unwrap_err();
    assert!(matches!(err, BrokerError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("another vcon-host run"), "{err}");
    // Clients (ingest, get, dlq) may still open it.
    SqliteBroker::open(&path).unwrap();
}
