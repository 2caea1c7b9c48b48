//! Batches: a thousand real documents land; a batch is one round trip (counted by a proxy
//! between the plugin and Redis); answers are per item and in order.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fixtures::{
    assert_same, fake_docs, large_doc, new_uuid, open, server, with, Direct, Doc,
};

#[test]
fn a_batch_of_a_thousand_real_documents_lands() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let storage = open(&server.options(&prefix));
    let fake = fake_docs(usize::MAX);
    assert!(
        fake.len() >= 600,
        "the fake set has {} documents",
        fake.len()
    );
    let docs: Vec<Doc> = (0..1000)
        .map(|i| fake[i % fake.len()].with_uuid(&new_uuid()))
        .collect();
    let records: Vec<_> = docs.iter().map(Doc::record).collect();
    let results = storage.save_many(&records).unwrap();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(Result::is_ok));

    // Read back with a plain client: 1,000 string keys, the exact bytes, the TTL.
    let mut direct = Direct::connect();
    assert_eq!(direct.keys_under(&prefix.name).len(), 1000);
    let keys: Vec<String> = docs.iter().map(|d| prefix.key(&d.uuid)).collect();
    let stored: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&keys)
        .query(&mut direct.conn)
        .unwrap();
    for (doc, stored) in docs.iter().zip(stored) {
        assert_same(doc, stored);
    }
    let ttl = direct.ttl(&keys[999]);
    assert!((604_790..=604_800).contains(&ttl), "TTL {ttl}");

    // And through the plugin.
    assert_eq!(storage.count().unwrap(), 1000);
    let uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    for (doc, stored) in docs.iter().zip(storage.get_many(&uuids).unwrap()) {
        assert_same(doc, stored);
    }
    // The large recorded call, in a batch of its own copies.
    let large = large_doc();
    let copies: Vec<Doc> = (0..3).map(|_| large.with_uuid(&new_uuid())).collect();
    let records: Vec<_> = copies.iter().map(Doc::record).collect();
    assert!(storage
        .save_many(&records)
        .unwrap()
        .iter()
        .all(Result::is_ok));
    assert_same(&copies[2], storage.get(&copies[2].uuid).unwrap());

    let removed = storage.delete_many(&uuids).unwrap();
    assert!(removed.iter().all(|r| *r));
    assert_eq!(storage.count().unwrap(), 3);
}

#[test]
fn answers_are_per_item_and_in_order() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let storage = open(&server.options(&prefix));
    let first = Doc::synthetic();
    let mut second = first.clone();
    second.json = String::from_utf8(first.json.clone())
        .unwrap()
        .replace("Ann", "Bob")
        .into_bytes();
    let other = Doc::synthetic();
    let results = storage
        .save_many(&[first.record(), other.record(), second.record()])
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // The pipeline runs in order: the last version of a uuid wins.
    assert_same(&second, storage.get(&first.uuid).unwrap());
    assert_eq!(storage.count().unwrap(), 2);

    let missing = new_uuid();
    let got = storage
        .get_many(&[&other.uuid, &missing, &first.uuid])
        .unwrap();
    assert_same(&other, got[0].clone());
    assert_eq!(got[1], None);
    assert_same(&second, got[2].clone());

    // Deleting a uuid twice in one batch answers true once, as deleting in order would.
    let removed = storage
        .delete_many(&[&first.uuid, &missing, &first.uuid, &other.uuid])
        .unwrap();
    assert_eq!(removed, [true, false, false, true]);
    assert_eq!(storage.save_many(&[]).unwrap().len(), 0);
    assert_eq!(storage.get_many(&[]).unwrap().len(), 0);
    assert_eq!(storage.delete_many(&[]).unwrap().len(), 0);
}

#[test]
fn a_batch_is_one_round_trip() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let proxy = Proxy::start(6379);
    // One connection, through the proxy; the database part of the URL as in the tests' URL.
    let db = crate::fixtures::url()
        .rsplit('/')
        .next()
        .unwrap_or("11")
        .to_owned();
    let storage = open(&with(
        server.options(&prefix),
        json!({
            "redis_url": format!("redis://127.0.0.1:{}/{db}", proxy.port),
            "pool_size": 1,
        }),
    ));
    let docs: Vec<Doc> = fake_docs(200)
        .iter()
        .map(|d| d.with_uuid(&new_uuid()))
        .collect();
    // The pooled connection is made (and named) by a first save.
    storage.save(&docs[0].record()).unwrap();

    // The counter works: three saves are three round trips.
    let before = proxy.turns();
    for doc in &docs[..3] {
        storage.save(&doc.record()).unwrap();
    }
    assert_eq!(proxy.turns() - before, 3);

    let records: Vec<_> = docs.iter().map(Doc::record).collect();
    let before = proxy.turns();
    let results = storage.save_many(&records).unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        proxy.turns() - before,
        1,
        "save_many of 200 took more than one round trip"
    );

    let uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    let before = proxy.turns();
    let got = storage.get_many(&uuids).unwrap();
    assert_eq!(
        proxy.turns() - before,
        1,
        "get_many took more than one round trip"
    );
    assert!(got.iter().all(Option::is_some));

    let before = proxy.turns();
    assert!(storage.delete_many(&uuids).unwrap().iter().all(|r| *r));
    assert_eq!(
        proxy.turns() - before,
        1,
        "delete_many took more than one round trip"
    );
}

/// A TCP proxy in front of Redis that counts round trips: it holds Redis's answers back until the
/// client has sent nothing for [`Proxy::QUIET`], then delivers them; each time the client sends
/// again after a delivery is one more round trip. A client that waited for each answer before
/// sending the next command would count one per command (and be slow); a pipelined batch counts
/// one.
struct Proxy {
    port: u16,
    turns: Arc<AtomicUsize>,
}

impl Proxy {
    const QUIET: Duration = Duration::from_millis(250);

    fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let turns = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&turns);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || relay(client, upstream_port, &counter));
            }
        });
        Self { port, turns }
    }

    fn turns(&self) -> usize {
        self.turns.load(Ordering::SeqCst)
    }
}

/// What the two directions of one relayed connection share.
struct Flow {
    /// When the client last sent something.
    last_sent: Instant,
    /// Whether answers were delivered since the client last sent.
    delivered: bool,
}

fn relay(client: TcpStream, upstream_port: u16, turns: &AtomicUsize) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
        return;
    };
    let flow = Arc::new(Mutex::new(Flow {
        last_sent: Instant::now(),
        delivered: true,
    }));
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut from_server, mut to_client) = (server, client);
    std::thread::scope(|scope| {
        let upstream_flow = Arc::clone(&flow);
        scope.spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = match from_client.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                {
                    let mut flow = upstream_flow.lock().unwrap();
                    if flow.delivered {
                        turns.fetch_add(1, Ordering::SeqCst);
                        flow.delivered = false;
                    }
                    flow.last_sent = Instant::now();
                }
                if to_server.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to_server.shutdown(Shutdown::Write);
        });
        from_server
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let mut buf = vec![0; 64 * 1024];
        let mut held = Vec::new();
        loop {
            match from_server.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => held.extend_from_slice(&buf[..n]),
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
            if held.is_empty() {
                continue;
            }
            {
                let mut flow = flow.lock().unwrap();
                if flow.last_sent.elapsed() < Proxy::QUIET {
                    continue;
                }
                // Marked before the answers go, so what the client sends after reading them
                // is always counted.
                flow.delivered = true;
            }
            if to_client.write_all(&held).is_err() {
                break;
            }
            held.clear();
        }
        let _ = to_client.shutdown(Shutdown::Both);
    });
}
