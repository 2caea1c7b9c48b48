//! The embedded broker on a real SQLite file: the contract, plus what only it does (recovery
//! after a restart, the run lock, purging).

use std::time::Duration;

use vcon_broker::{Broker, BrokerError, Finish, SqliteBroker};

use crate::contract::{self, hot, uuid};

fn broker() -> (tempfile::TempDir, SqliteBroker) {
    let dir = tempfile::tempdir().unwrap();
    let broker = SqliteBroker::open(&dir.path().join("broker.sqlite")).unwrap();
    (dir, broker)
}

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (_dir, broker) = broker();
                contract::$name(&broker);
            }
        )*
    };
}

contract_tests!(
    claimed_items_stay_until_finished_and_finish_pushes_atomically,
    lists_are_claimed_in_priority_order,
    hot_store_round_trips_and_deletes,
    listing_is_newest_first_paged_and_forget_removes_everything,
    search_intersects_and_an_unmatched_term_empties_it,
    expiry_never_drops_a_vcon_that_still_waits_in_a_list,
);

#[test]
fn claims_of_a_dead_run_are_put_back_and_live_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    {
        let broker = SqliteBroker::open_for_run(&path).unwrap();
        broker
            .ingest(&[hot(&uuid(1)), hot(&uuid(2))], &["in".into()], None)
            .unwrap();
        broker
            .claim(&["in".into()], "dead-worker", 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            broker.requeue_abandoned().unwrap(),
            0,
            "this run's own claims are alive"
        );
    }
    let client = SqliteBroker::open(&path).unwrap();
    assert_eq!(
        client.requeue_abandoned().unwrap(),
        0,
        "a client never releases claims"
    );
    drop(client);
    let broker = SqliteBroker::open_for_run(&path).unwrap();
    assert!(broker.claim(&["in".into()], "w", 10).unwrap().is_none());
    assert_eq!(broker.requeue_abandoned().unwrap(), 2);
    let claim = broker.claim(&["in".into()], "w", 10).unwrap().unwrap();
    assert_eq!(claim.items.len(), 2);
    let got = broker.get_vcons(&[&uuid(1), &uuid(2)]).unwrap();
    assert!(got.iter().all(Option::is_some), "the hot copies survived");
}

#[test]
fn purge_keeps_queued_copies_and_drops_dead_lettered_ones() {
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
    // Once its chain has finished it, it may expire.
    let claim = broker.claim(&["in".into()], "w", 1).unwrap().unwrap();
    broker
        .finish(&[claim.items[0].id.clone()], &Finish::default())
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
