//! The embedded broker on a real SQLite file: the contract, plus what only it does (recovery
//! after a restart, the run lock, purging).

use std::time::Duration;

use vcon_broker::{Broker, BrokerError, Finish, SqliteBroker};

use crate::contract::{self, hot, uuid};

/// Makes every ingest that queues on the list `poison` fail at its last statement (a trigger
/// of the test's own), after the vCon's row and files are written: what the transaction must
/// take back with it.
pub(crate) fn poison_list(path: &std::path::Path) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON list_items WHEN NEW.list = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned list'); END;",
        )
        .unwrap();
}

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
    large_documents_round_trip_replace_and_delete,
    ingest_batches_stores_each_batch_on_its_own_lists,
    listing_is_newest_first_paged_and_forget_removes_everything,
    search_intersects_and_an_unmatched_term_empties_it,
    storing_a_vcon_again_replaces_its_terms_and_listing_time,
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

/// An idle worker polls its lists every few milliseconds; a claim that found them empty is
/// answered again without a transaction (so it never waits behind, or holds up, a writer),
/// until this handle commits anything or the look is too old to vouch for another process's
/// pushes.
#[test]
fn an_idle_claim_takes_no_transaction_and_still_sees_every_push() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    let worker = SqliteBroker::open_for_run(&path).unwrap();
    let lists = ["in".to_owned()];
    assert!(worker.claim(&lists, "w", 8).unwrap().is_none());

    // Another process holds the write lock: a claim that needed a transaction would wait for
    // it (the busy timeout is 10 s).
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    assert!(worker.claim(&lists, "w", 8).unwrap().is_none());
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "the idle claim waited {:?} for the write lock",
        started.elapsed()
    );
    other.execute_batch("ROLLBACK").unwrap();

    // A push through this handle is claimed at once.
    worker.push("in", &[&uuid(1)]).unwrap();
    let claim = worker.claim(&lists, "w", 8).unwrap().expect("its own push");
    assert_eq!(claim.items[0].uuid, uuid(1));

    // A push by another process is claimed once the look has aged (100 ms).
    assert!(worker.claim(&lists, "w", 8).unwrap().is_none());
    SqliteBroker::open(&path)
        .unwrap()
        .push("in", &[&uuid(2)])
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let claim = loop {
        if let Some(claim) = worker.claim(&lists, "w", 8).unwrap() {
            break claim;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "another process's push was never claimed"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(claim.items[0].uuid, uuid(2));
    // Other lists were never found empty: looked at in the database.
    worker.push("other", &[&uuid(3)]).unwrap();
    let both = ["in".to_owned(), "other".to_owned()];
    assert_eq!(
        worker.claim(&both, "w", 8).unwrap().unwrap().items[0].uuid,
        uuid(3)
    );
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

/// A real 5 KB vCon from the shared data set, under a fresh uuid per `i`.
fn five_kb_vcon(i: usize) -> vcon_broker::HotVcon {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vcons/fake");
    let source =
        std::fs::read_to_string(dir.join("03f94617-0a05-40cd-89a7-69e746fa512a.vcon.json"))
            .expect("the shared data set beside the repository");
    let doc: serde_json::Value = serde_json::from_str(&source).unwrap();
    let json = source.replace(doc["uuid"].as_str().unwrap(), &uuid(i));
    vcon_broker::HotVcon::from_json(json.into_bytes().into(), 0).unwrap()
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn a_running_broker_checkpoints_off_the_commit_path_and_keeps_its_wal_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    let wal = dir.path().join("broker.sqlite-wal");
    let broker = SqliteBroker::open_for_run(&path).unwrap();
    // One vCon per transaction without a pause, as `POST /vcon` with one client: about 75 KB of
    // WAL each, 300 MB in all if nothing bounded it (the limit is 64 MB).
    let lists = vec!["in".to_owned()];
    for i in 0..4_000 {
        broker.ingest(&[five_kb_vcon(i)], &lists, None).unwrap();
    }
    let wal_len = file_len(&wal);
    assert!(
        wal_len < 160 << 20,
        "the WAL grew to {wal_len} bytes: the checkpoint thread did not bound it"
    );
    // The run's own connection never checkpoints (wal_autocheckpoint=0): the pages reached
    // the database file through the checkpoint thread.
    std::thread::sleep(Duration::from_millis(400));
    let db_len = file_len(&path);
    assert!(
        db_len > 20 << 20,
        "the database file holds {db_len} bytes after 20 MB of vCons: nothing checkpointed"
    );
    drop(broker);
    let reopened = SqliteBroker::open(&path).unwrap();
    assert_eq!(reopened.len("in").unwrap(), 4_000, "every commit kept");
}

#[test]
fn a_failed_write_is_rolled_back_whole_and_the_broker_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    let broker = SqliteBroker::open(&path).unwrap();
    // A trigger of the test's own makes the last statement of an ingest fail, after the vCon
    // row is written: the transaction must take the row back with it.
    poison_list(&path);
    let err = broker
        .ingest(&[hot(&uuid(1))], &["poison".to_owned()], None)
        .unwrap_err();
    assert!(err.to_string().contains("poisoned list"), "{err}");
    assert!(
        broker.get_vcons(&[&uuid(1)]).unwrap()[0].is_none(),
        "half an ingest was kept"
    );
    assert!(
        contract::page(&broker, 0, 10).is_empty(),
        "half an ingest was listed"
    );
    // The connection is not left inside the failed transaction.
    broker
        .ingest(&[hot(&uuid(2))], &["in".to_owned()], None)
        .unwrap();
    assert_eq!(broker.len("in").unwrap(), 1);
}

/// A broker file made before `listing.terms` existed (its search terms indexed by uuid instead)
/// is migrated on open: its vCons are still found, re-stored and forgotten, terms and all, and
/// the index an ingest no longer writes is gone.
#[test]
fn a_broker_file_from_before_listing_terms_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE listing (uuid TEXT PRIMARY KEY, created_at_us INTEGER NOT NULL)
                 WITHOUT ROWID;
             CREATE INDEX listing_created ON listing(created_at_us, uuid);
             CREATE TABLE search_terms (term TEXT NOT NULL, uuid TEXT NOT NULL,
                 PRIMARY KEY (term, uuid)) WITHOUT ROWID;
             CREATE INDEX search_terms_uuid ON search_terms(uuid);",
        )
        .unwrap();
        for (i, terms) in [
            (1, ["tel:+15550001", "name:Ann"]),
            (2, ["tel:+15550001", "name:Bob"]),
        ] {
            old.execute(
                "INSERT INTO listing VALUES (?1, ?2)",
                rusqlite::params![uuid(i), 1_700_000_000_000_000_i64 + i as i64],
            )
            .unwrap();
            for term in terms {
                old.execute(
                    "INSERT INTO search_terms VALUES (?1, ?2)",
                    [term, uuid(i).as_str()],
                )
                .unwrap();
            }
        }
    }
    let broker = SqliteBroker::open(&path).unwrap();
    let search = |terms: &[&str]| {
        broker
            .search(&terms.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>())
            .unwrap()
    };
    assert_eq!(search(&["tel:+15550001"]), [uuid(1), uuid(2)]);

    // Stored again with other terms: the migrated ones are replaced, not left behind.
    let again = contract::hot_at(&uuid(1), 1_700_000_000_000_009, &["name:Cy"]);
    broker
        .ingest(std::slice::from_ref(&again), &[], None)
        .unwrap();
    assert_eq!(search(&["name:Ann"]), Vec::<String>::new());
    assert_eq!(search(&["name:Cy"]), [uuid(1)]);
    assert_eq!(search(&["tel:+15550001"]), [uuid(2)]);

    // Forgotten: its migrated terms go with it.
    assert!(!broker.forget(&uuid(2)).unwrap(), "no hot copy to delete");
    assert_eq!(search(&["tel:+15550001"]), Vec::<String>::new());
    assert_eq!(search(&["name:Bob"]), Vec::<String>::new());
    drop(broker);

    let check = rusqlite::Connection::open(&path).unwrap();
    let old_index: i64 = check
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'search_terms_uuid'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(old_index, 0, "the index by uuid is dropped");
    let left: i64 = check
        .query_row("SELECT count(*) FROM search_terms", [], |row| row.get(0))
        .unwrap();
    assert_eq!(left, 1, "only name:Cy is left");
    // Opening a migrated file again changes nothing.
    drop(SqliteBroker::open(&path).unwrap());
}

fn page_size(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap()
}

/// A new broker file has 2 KiB pages (a commit writes fewer WAL bytes); one made with
/// SQLite's default 4 KiB keeps them, and works as before, checkpoint thread included.
#[test]
fn a_new_broker_file_has_small_pages_and_an_old_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.sqlite");
    drop(SqliteBroker::open_for_run(&new).unwrap());
    assert_eq!(page_size(&new), 2048);

    let old = dir.path().join("old.sqlite");
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
        .unwrap();
    let broker = SqliteBroker::open_for_run(&old).unwrap();
    let lists = vec!["in".to_owned()];
    for i in 0..200 {
        broker.ingest(&[five_kb_vcon(i)], &lists, None).unwrap();
    }
    drop(broker);
    assert_eq!(page_size(&old), 4096);
    assert_eq!(SqliteBroker::open(&old).unwrap().len("in").unwrap(), 200);
}

#[test]
fn a_running_broker_marks_its_checkpoint_rounds_and_a_client_handle_never_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    let broker = std::sync::Arc::new(SqliteBroker::open_for_run(&path).unwrap());
    let client = SqliteBroker::open(&path).unwrap();
    let (run, other) = (broker.background_work(), client.background_work());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (broker, done) = (std::sync::Arc::clone(&broker), std::sync::Arc::clone(&done));
        std::thread::spawn(move || {
            let lists = vec!["in".to_owned()];
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) && i < 20_000 {
                broker.ingest(&[five_kb_vcon(i)], &lists, None).unwrap();
                i += 1;
            }
        })
    };
    // A round that copies and fsyncs a 100 ms share of commits takes milliseconds: sampled
    // every few microseconds it is seen.
    let started = std::time::Instant::now();
    let mut seen = false;
    while !seen && started.elapsed() < Duration::from_secs(20) {
        seen = run.running();
        assert!(!other.running(), "a client handle has no checkpoint thread");
        std::thread::yield_now();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        seen,
        "no checkpoint round was seen working in 20 s of commits"
    );
    // With no commits, a round has nothing to copy: the mark is let go.
    let started = std::time::Instant::now();
    while run.running() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!run.running(), "the mark outlived the rounds");
}
