//! The Redis broker against a real Redis on loopback: the contract, the Python server's key
//! layout read back with a plain client, recovery of a dead host's claims by another host, and
//! a Redis restart in the middle of a run (against a `redis-server` this test starts).
//!
//! They use logical database 12 of 127.0.0.1:6379 only (`FLUSHDB` before each test, one test at
//! a time). Without a Redis there they print why, loudly, and pass, unless
//! `VCON_REQUIRE_SERVICES=1` (CI), where they fail.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::Commands;
use vcon_broker::{Broker, DeadLetter, Finish, HotVcon, ItemId, ListingPage, RedisBroker};

use crate::contract::{self, hot, hot_at, uuid};

const URL: &str = "redis://127.0.0.1:6379/12";

/// One test at a time: they share database 12.
static DB: Mutex<()> = Mutex::new(());

fn require_services() -> bool {
    std::env::var("VCON_REQUIRE_SERVICES").as_deref() == Ok("1")
}

fn skip(message: &str) {
    if require_services() {
        panic!("{message} (VCON_REQUIRE_SERVICES=1, so this is a failure)");
    }
    eprintln!("\n*** SKIPPED: {message} ***\n");
}

/// A plain client on database 12.
fn plain() -> redis::Connection {
    redis::Client::open(URL)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

/// Database 12, emptied, held for the test; `None` (after saying so) when Redis is not there.
fn db() -> Option<MutexGuard<'static, ()>> {
    let guard = DB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let reachable = redis::Client::open(URL)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut c| redis::cmd("FLUSHDB").query::<()>(&mut c));
    match reachable {
        Ok(()) => Some(guard),
        Err(err) => {
            skip(&format!(
                "no Redis at {URL} ({err}): the Redis broker tests did not run"
            ));
            None
        }
    }
}

fn broker() -> Option<(MutexGuard<'static, ()>, RedisBroker)> {
    let guard = db()?;
    Some((guard, RedisBroker::open(URL).unwrap()))
}

macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some((_db, broker)) = broker() else { return };
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

/// A real vCon document, as the Python server stores it.
fn document(uuid: &str, created_at: &str) -> HotVcon {
    let json = format!(
        r#"{{"vcon":"0.0.1","uuid":"{uuid}","created_at":"{created_at}","parties":[{{"tel":"+15551230000","name":"Ann"}}],"dialog":[],"analysis":[],"attachments":[]}}"#
    );
    HotVcon::from_json(json.into_bytes().into(), 0).unwrap()
}

fn list(con: &mut redis::Connection, key: &str) -> Vec<String> {
    con.lrange(key, 0, -1).unwrap()
}

#[test]
fn the_python_key_layout_reads_back_with_a_plain_client() {
    let Some((_db, broker)) = broker() else {
        return;
    };
    let mut con = plain();
    let v = document(&uuid(1), "2024-03-01T12:00:00.750Z");
    broker
        .ingest(std::slice::from_ref(&v), &["in".into()], None)
        .unwrap();

    let key = format!("vcon:{}", uuid(1));
    let kind: String = redis::cmd("TYPE").arg(&key).query(&mut con).unwrap();
    assert_eq!(kind, "string", "no RedisJSON here: a plain JSON string");
    let stored: Vec<u8> = con.get(&key).unwrap();
    assert_eq!(stored, &*v.json, "the document is stored verbatim");
    assert_eq!(
        list(&mut con, "in"),
        [uuid(1)],
        "the list holds plain uuids"
    );
    let score: String = redis::cmd("ZSCORE")
        .arg("vcons")
        .arg(&key)
        .query(&mut con)
        .unwrap();
    assert_eq!(
        score, "1709294400",
        "member vcon:{{uuid}}, score created_at in whole seconds"
    );
    let tel: Vec<String> = con.smembers("tel:+15551230000").unwrap();
    assert_eq!(tel, [uuid(1)]);
    let name: Vec<String> = con.smembers("name:Ann").unwrap();
    assert_eq!(name, [uuid(1)]);
    let ttl: i64 = con.ttl("tel:+15551230000").unwrap();
    assert_eq!(
        ttl, -1,
        "the search index does not expire (Python's does after a day)"
    );

    let claim = broker.claim(&["in".into()], "w", 10).unwrap().unwrap();
    assert!(
        list(&mut con, "in").is_empty(),
        "claimed: moved out of the list"
    );
    let processing: Vec<String> = con.hkeys("vcon-host:processing").unwrap();
    assert_eq!(processing.len(), 1);
    assert_eq!(list(&mut con, &processing[0]), [uuid(1)]);
    broker
        .finish(
            &[claim.items[0].id.clone()],
            &Finish {
                pushes: vec![("out".into(), uuid(1))],
                dead_letters: vec![DeadLetter {
                    list: "DLQ:in".into(),
                    uuid: uuid(1),
                    note: r#"{"reason":"test"}"#.into(),
                }],
            },
        )
        .unwrap();
    assert!(list(&mut con, &processing[0]).is_empty());
    assert_eq!(list(&mut con, "out"), [uuid(1)]);
    assert_eq!(
        list(&mut con, "DLQ:in"),
        [uuid(1)],
        "dead letters are plain uuids, as Python's /dlq/reprocess LPOPs them"
    );
    let note: String = con.hget("vcon-host:dlq-notes:DLQ:in", uuid(1)).unwrap();
    assert_eq!(note, r#"{"reason":"test"}"#);

    // What a Python API writes is read: a vCon at vcon:{uuid}, a uuid pushed to a list.
    let python = document(&uuid(2), "2024-03-02T00:00:00Z");
    let _: () = con.set(format!("vcon:{}", uuid(2)), &*python.json).unwrap();
    let _: () = con.rpush("in", uuid(2)).unwrap();
    let got = broker
        .get_vcons(&[&uuid(2)])
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    assert_eq!(got.uuid, uuid(2));
    assert_eq!(got.created_at_us, python.created_at_us);
    let claim = broker.claim(&["in".into()], "w", 10).unwrap().unwrap();
    assert_eq!(claim.items[0].uuid, uuid(2));

    // forget removes everything it indexed.
    assert!(broker.forget(&uuid(1)).unwrap());
    let exists: bool = con.exists(&key).unwrap();
    assert!(!exists);
    let member: Option<f64> = con.zscore("vcons", &key).unwrap();
    assert!(member.is_none());
    let tel: Vec<String> = con.smembers("tel:+15551230000").unwrap();
    assert!(tel.is_empty());
    let terms: bool = con.exists(format!("vcon-host:terms:{}", uuid(1))).unwrap();
    assert!(!terms);
}

#[test]
fn a_bare_uuid_member_written_by_python_is_listed_once() {
    let Some((_db, broker)) = broker() else {
        return;
    };
    let mut con = plain();
    let base = 1_700_000_000_000_000i64;
    broker
        .ingest(
            &[
                hot_at(&uuid(1), base, &[]),
                hot_at(&uuid(2), base + 10_000_000, &[]),
            ],
            &[],
            None,
        )
        .unwrap();
    // Python's storage fallback re-caches with bare members: one for a vCon already listed,
    // one for a vCon only Python knows.
    let _: () = con.zadd("vcons", uuid(1), 1_700_000_000).unwrap();
    let _: () = con.zadd("vcons", uuid(3), 1_700_000_020).unwrap();
    let page = |offset, limit| contract::page(&broker, offset, limit);
    assert_eq!(page(0, 10), [uuid(3), uuid(2), uuid(1)]);
    assert_eq!(page(1, 1), [uuid(2)]);
    assert_eq!(page(2, 5), [uuid(1)]);
    assert!(page(3, 5).is_empty());
    let window = broker
        .list_uuids(&ListingPage {
            since_us: Some(base + 10_500_000),
            until_us: Some(base + 20_000_000),
            offset: 0,
            limit: 10,
        })
        .unwrap();
    assert_eq!(
        window,
        [uuid(3), uuid(2)],
        "microsecond bounds cover their whole second"
    );
    broker.forget(&uuid(1)).unwrap();
    assert_eq!(
        page(0, 10),
        [uuid(3), uuid(2)],
        "both member forms forgotten"
    );
}

#[test]
fn a_dead_hosts_claims_go_back_to_the_front_in_order_and_a_live_hosts_stay() {
    let Some(_db) = db() else {
        return;
    };
    let mut con = plain();
    let a = RedisBroker::open_for_run_with_heartbeat(
        URL,
        Duration::from_millis(100),
        Duration::from_millis(700),
    )
    .unwrap();
    let b = RedisBroker::open_for_run(URL).unwrap();
    let client = RedisBroker::open(URL).unwrap();
    let vcons: Vec<HotVcon> = (0..8).map(|i| hot(&uuid(i))).collect();
    b.ingest(&vcons, &["in".into()], None).unwrap();
    let lists = vec!["in".to_owned()];
    let taken_by_a = a.claim(&lists, "4242:0", 3).unwrap().unwrap();
    let taken_by_b = b.claim(&lists, "4343:0", 2).unwrap().unwrap();
    assert_eq!(taken_by_b.items[0].uuid, uuid(3));

    assert_eq!(
        b.requeue_abandoned().unwrap(),
        0,
        "a live host keeps its claims"
    );
    assert_eq!(a.requeue_abandoned().unwrap(), 0, "so does the other one");
    assert_eq!(list(&mut con, "in"), [uuid(5), uuid(6), uuid(7)]);
    assert_eq!(b.len("in").unwrap(), 8, "claimed items count as the list's");

    a.stop_heartbeat();
    // A's heartbeat is still there for up to 700 ms: nothing moves yet.
    assert_eq!(b.requeue_abandoned().unwrap(), 0);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(
        client.requeue_abandoned().unwrap(),
        0,
        "a client releases nothing"
    );
    assert_eq!(b.requeue_abandoned().unwrap(), 3);
    assert_eq!(
        list(&mut con, "in"),
        [uuid(0), uuid(1), uuid(2), uuid(5), uuid(6), uuid(7)],
        "back at the front, in their order"
    );
    assert_eq!(b.requeue_abandoned().unwrap(), 0, "and only once");
    let registered: Vec<String> = con.hkeys("vcon-host:processing").unwrap();
    assert_eq!(
        registered.len(),
        1,
        "A's processing list is unregistered: {registered:?}"
    );

    // A (hung, not dead) finishing late changes nothing but its pushes.
    let ids: Vec<ItemId> = taken_by_a.items.iter().map(|i| i.id.clone()).collect();
    a.finish(&ids, &Finish::default()).unwrap();
    assert_eq!(b.len("in").unwrap(), 8);
    drop(a);
    assert_eq!(
        b.len("in").unwrap(),
        8,
        "a handle whose heartbeat stopped gives nothing back"
    );

    let ids: Vec<ItemId> = taken_by_b.items.iter().map(|i| i.id.clone()).collect();
    b.finish(&ids, &Finish::default()).unwrap();
    let rest = b.claim(&lists, "4343:0", 10).unwrap().unwrap();
    let order: Vec<&str> = rest.items.iter().map(|i| i.uuid.as_str()).collect();
    assert_eq!(
        order,
        [uuid(0), uuid(1), uuid(2), uuid(5), uuid(6), uuid(7)]
    );
}

#[test]
fn a_stopping_host_gives_back_its_claims_and_withdraws_its_heartbeat() {
    let Some(_db) = db() else {
        return;
    };
    let mut con = plain();
    let host = RedisBroker::open_for_run(URL).unwrap();
    let heartbeat = format!("vcon-host:heartbeat:{}", host.host_id());
    let ttl: i64 = con.pttl(&heartbeat).unwrap();
    assert!(ttl > 25_000 && ttl <= 30_000, "heartbeat expiry {ttl} ms");
    host.ingest(&[hot(&uuid(1)), hot(&uuid(2))], &["in".into()], None)
        .unwrap();
    host.claim(&["in".into()], "w", 1).unwrap().unwrap();
    assert_eq!(list(&mut con, "in"), [uuid(2)]);
    drop(host);
    assert_eq!(list(&mut con, "in"), [uuid(1), uuid(2)]);
    let alive: bool = con.exists(&heartbeat).unwrap();
    assert!(!alive);
    let registered: Vec<String> = con.hkeys("vcon-host:processing").unwrap();
    assert!(registered.is_empty(), "{registered:?}");
}

#[test]
fn an_idle_claim_waits_in_redis_and_wakes_for_a_push() {
    let Some((_db, broker)) = broker() else {
        return;
    };
    let lists = vec!["in".to_owned(), "low".to_owned()];
    let started = Instant::now();
    assert!(broker.claim(&lists, "w", 10).unwrap().is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
        "an idle claim blocks about {:?}, took {waited:?}",
        RedisBroker::IDLE_BLOCK
    );

    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            let mut con = plain();
            let _: () = con.rpush("in", &[uuid(1), uuid(2), uuid(3)]).unwrap();
        });
        let started = Instant::now();
        let claim = broker.claim(&lists, "w", 10).unwrap().unwrap();
        let mut got: Vec<String> = claim.items.iter().map(|i| i.uuid.clone()).collect();
        // The pusher's three uuids arrive in one RPUSH: the blocking move takes the first, the
        // top-up the others.
        got.sort();
        assert_eq!(got, [uuid(1), uuid(2), uuid(3)]);
        assert!(started.elapsed() < Duration::from_millis(190));
    });
    assert_eq!(broker.len("in").unwrap(), 3);
    assert_eq!(broker.lists().unwrap(), [("in".to_owned(), 3)]);
}

#[test]
fn time_to_live_waits_for_every_list_and_survives_link_writes() {
    let Some((_db, broker)) = broker() else {
        return;
    };
    let mut con = plain();
    let key = format!("vcon:{}", uuid(1));
    let pttl = |con: &mut redis::Connection| -> i64 { con.pttl(&key).unwrap() };
    broker
        .ingest(
            &[hot(&uuid(1))],
            &["in".into()],
            Some(Duration::from_secs(60)),
        )
        .unwrap();
    assert_eq!(pttl(&mut con), -1, "queued: no expiry yet");
    let claim = broker.claim(&["in".into()], "w", 1).unwrap().unwrap();
    broker.put_vcon(&hot(&uuid(1))).unwrap();
    assert_eq!(pttl(&mut con), -1);
    broker
        .finish(
            &[claim.items[0].id.clone()],
            &Finish {
                pushes: vec![("out".into(), uuid(1))],
                dead_letters: Vec::new(),
            },
        )
        .unwrap();
    assert_eq!(pttl(&mut con), -1, "still waits in the egress list");
    assert_eq!(broker.pop_back("out", 10).unwrap(), [uuid(1)]);
    let left = pttl(&mut con);
    assert!(
        left > 55_000 && left <= 60_000,
        "expiry starts once it waits nowhere: {left}"
    );
    broker.put_vcon(&hot(&uuid(1))).unwrap();
    let kept = pttl(&mut con);
    assert!(
        kept > 55_000,
        "a link write keeps the expiry (Python's clears it): {kept}"
    );
    assert!(broker.expire_vcon(&uuid(1), None).unwrap());
    assert_eq!(pttl(&mut con), -1);
    assert!(!broker.expire_vcon(&uuid(9), None).unwrap());

    // A vCon whose deadline passed while it waited goes as soon as it waits nowhere.
    broker
        .ingest(
            &[hot(&uuid(2))],
            &["in".into()],
            Some(Duration::from_millis(1)),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(10));
    assert!(broker.get_vcons(&[&uuid(2)]).unwrap()[0].is_some());
    let claim = broker.claim(&["in".into()], "w", 1).unwrap().unwrap();
    broker
        .finish(
            &[claim.items[0].id.clone()],
            &Finish {
                pushes: Vec::new(),
                dead_letters: vec![DeadLetter {
                    list: "DLQ:in".into(),
                    uuid: uuid(2),
                    note: "{}".into(),
                }],
            },
        )
        .unwrap();
    assert!(
        broker.get_vcons(&[&uuid(2)]).unwrap()[0].is_none(),
        "a dead letter does not keep the hot copy"
    );
    assert_eq!(
        broker.purge_expired().unwrap(),
        0,
        "Redis expires by itself"
    );
    let pending: usize = con.hlen("vcon-host:pending-ttl").unwrap();
    let waiting: usize = con.hlen("vcon-host:waiting").unwrap();
    assert_eq!((pending, waiting), (0, 0), "no bookkeeping left behind");
}

#[test]
fn a_document_that_is_not_a_vcon_reads_as_absent() {
    let Some((_db, broker)) = broker() else {
        return;
    };
    let mut con = plain();
    let _: () = con.set(format!("vcon:{}", uuid(1)), "not json").unwrap();
    let _: () = con
        .set(
            format!("vcon:{}", uuid(2)),
            format!(r#"{{"uuid":"{}"}}"#, uuid(3)),
        )
        .unwrap();
    broker.ingest(&[hot(&uuid(4))], &[], None).unwrap();
    let got = broker.get_vcons(&[&uuid(1), &uuid(2), &uuid(4)]).unwrap();
    assert!(got[0].is_none());
    assert!(
        got[1].is_none(),
        "a document of another uuid is not this vCon"
    );
    assert!(got[2].is_some());
}

#[test]
fn a_password_never_shows_in_errors() {
    let err = RedisBroker::open("redis://user:hunter2@127.0.0.1:1/0").unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("redis://127.0.0.1:1/0"), "{text}");
}

/// A `redis-server` of the test's own, on a free port.
struct OwnRedis {
    port: u16,
    args: Vec<String>,
    child: Child,
}

impl OwnRedis {
    fn start(extra: &[&str]) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend(["--daemonize", "no"].map(str::to_owned));
        let child = Self::spawn(&args)?;
        let server = Self { port, args, child };
        server.wait_up();
        Some(server)
    }

    fn spawn(args: &[String]) -> Option<Child> {
        match Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => Some(child),
            Err(err) => {
                skip(&format!(
                    "cannot start redis-server ({err}): the restart test did not run"
                ));
                None
            }
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let up = redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if up.is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.args).unwrap();
        self.wait_up();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Retries `op` until it succeeds, answering how long that took.
fn until_ok<T>(
    limit: Duration,
    mut op: impl FnMut() -> Result<T, vcon_broker::BrokerError>,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        match op() {
            Ok(value) => return (value, started.elapsed()),
            Err(err) if started.elapsed() < limit => {
                eprintln!("not yet: {err}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(err) => panic!("still failing after {limit:?}: {err}"),
        }
    }
}

#[test]
fn a_redis_restart_mid_run_does_not_wedge_the_broker() {
    let Some(mut server) = OwnRedis::start(&["--save", "", "--appendonly", "no"]) else {
        return;
    };
    let url = server.url();
    let host = RedisBroker::open_for_run_with_heartbeat(
        &url,
        Duration::from_millis(200),
        Duration::from_secs(5),
    )
    .unwrap();
    let lists = vec!["in".to_owned()];
    host.ingest(&[hot(&uuid(1))], &lists, None).unwrap();
    let claim = host.claim(&lists, "w", 10).unwrap().unwrap();

    server.kill();
    let started = Instant::now();
    assert!(host
        .finish(&[claim.items[0].id.clone()], &Finish::default())
        .is_err());
    assert!(host.claim(&lists, "w", 10).is_err());
    assert!(host.get_vcons(&[&uuid(1)]).is_err());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "operations on a vanished server fail promptly: {:?}",
        started.elapsed()
    );

    server.restart();
    // Without persistence the restarted server is empty: the broker must simply work again.
    let (_, took) = until_ok(Duration::from_secs(10), || {
        host.ingest(&[hot(&uuid(2))], &lists, None)
    });
    eprintln!("the first ingest after the restart succeeded after {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "one failed operation at most: {took:?}"
    );
    let claim = host.claim(&lists, "w", 10).unwrap().unwrap();
    assert_eq!(claim.items[0].uuid, uuid(2));
    host.finish(
        &[claim.items[0].id.clone()],
        &Finish {
            pushes: vec![("out".into(), uuid(2))],
            dead_letters: Vec::new(),
        },
    )
    .unwrap();
    assert_eq!(host.len("out").unwrap(), 1);
    // The heartbeat comes back by itself.
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let heartbeat = format!("vcon-host:heartbeat:{}", host.host_id());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let alive: bool = con.exists(&heartbeat).unwrap();
        if alive {
            break;
        }
        assert!(Instant::now() < deadline, "the heartbeat did not come back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn claims_survive_a_restart_of_a_persistent_redis() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().display().to_string();
    let Some(mut server) = OwnRedis::start(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        &dir_arg,
    ]) else {
        return;
    };
    let url = server.url();
    let host = RedisBroker::open_for_run(&url).unwrap();
    let lists = vec!["in".to_owned()];
    let vcons: Vec<HotVcon> = (0..5).map(|i| hot(&uuid(i))).collect();
    host.ingest(&vcons, &lists, None).unwrap();
    let claim = host.claim(&lists, "w", 2).unwrap().unwrap();

    server.restart();
    let ids: Vec<ItemId> = claim.items.iter().map(|i| i.id.clone()).collect();
    until_ok(Duration::from_secs(10), || {
        host.finish(
            &ids,
            &Finish {
                pushes: vec![("out".into(), uuid(0)), ("out".into(), uuid(1))],
                dead_letters: Vec::new(),
            },
        )
    });
    assert_eq!(host.len("in").unwrap(), 3, "the claim was finished once");
    assert_eq!(host.len("out").unwrap(), 2);
    let rest = host.claim(&lists, "w", 10).unwrap().unwrap();
    assert_eq!(rest.items.len(), 3);
    assert!(host.get_vcons(&[&uuid(4)]).unwrap()[0].is_some());
}

#[test]
fn the_largest_counts_and_times_to_live_are_accepted() {
    let Some((_db, broker)) = broker() else {
        return;
    };
    broker
        .ingest(
            &[hot(&uuid(1)), hot(&uuid(2))],
            &["in".into()],
            Some(Duration::MAX),
        )
        .unwrap();
    let claim = broker
        .claim(&["in".into()], "w", usize::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(claim.items.len(), 2);
    let ids: Vec<ItemId> = claim.items.iter().map(|i| i.id.clone()).collect();
    broker.finish(&ids, &Finish::default()).unwrap();
    assert!(broker.expire_vcon(&uuid(1), Some(Duration::MAX)).unwrap());
    broker.push("out", &[&uuid(1), &uuid(2)]).unwrap();
    assert_eq!(
        broker.pop_back("out", usize::MAX).unwrap(),
        [uuid(2), uuid(1)]
    );
    assert_eq!(broker.entries("out", usize::MAX).unwrap(), []);
    let all = broker
        .list_uuids(&ListingPage {
            since_us: Some(i64::MIN),
            until_us: Some(i64::MAX),
            offset: 0,
            limit: u64::MAX,
        })
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(broker.get_vcons(&[&uuid(1), &uuid(2)]).unwrap().len(), 2);
}
