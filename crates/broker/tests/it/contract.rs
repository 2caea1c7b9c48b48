//! What every broker must do, as functions over `&dyn Broker`: each broker's test module calls
//! them on a fresh, empty broker of its kind.

use std::time::Duration;

use vcon_broker::{Broker, DeadLetter, Finish, HotVcon, IngestBatch, ItemId, ListingPage};

pub(crate) fn hot(uuid: &str) -> HotVcon {
    hot_at(uuid, 1_700_000_000_000_000, &[])
}

pub(crate) fn hot_at(uuid: &str, created_at_us: i64, search_keys: &[&str]) -> HotVcon {
    HotVcon {
        uuid: uuid.to_owned(),
        json: format!(r#"{{"uuid":"{uuid}"}}"#).into_bytes().into(),
        created_at_us,
        created_at_offset_s: 0,
        updated_at_us: created_at_us,
        subject: None,
        search_keys: search_keys.iter().map(|k| (*k).to_owned()).collect(),
        staged: None,
    }
}

pub(crate) fn uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// One page of the whole listing, newest first.
pub(crate) fn page(broker: &dyn Broker, offset: u64, limit: u64) -> Vec<String> {
    broker
        .list_uuids(&ListingPage {
            since_us: None,
            until_us: None,
            offset,
            limit,
        })
        .unwrap()
}

pub(crate) fn claimed_items_stay_until_finished_and_finish_pushes_atomically(broker: &dyn Broker) {
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

    let ids: Vec<ItemId> = first.items.iter().map(|i| i.id.clone()).collect();
    let finish = Finish {
        pushes: vec![("out".into(), uuid(0)), ("out".into(), uuid(1))],
        dead_letters: vec![DeadLetter {
            list: "DLQ:in".into(),
            uuid: uuid(2),
            note: r#"{"reason":"test"}"#.into(),
        }],
    };
    broker.finish(&ids, &finish).unwrap();
    assert_eq!(broker.len("in").unwrap(), 2);
    assert_eq!(broker.len("out").unwrap(), 2);
    assert_eq!(broker.len("DLQ:in").unwrap(), 1);
    let dead = broker.entries("DLQ:in", 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].uuid, uuid(2));
    assert_eq!(dead[0].note.as_deref(), Some(r#"{"reason":"test"}"#));
    assert!(broker.remove_entry(&dead[0].id).unwrap());
    assert_eq!(broker.len("DLQ:in").unwrap(), 0);
    assert_eq!(
        broker.pop_back("out", 10).unwrap(),
        [uuid(1), uuid(0)],
        "RPOP order"
    );
}

pub(crate) fn lists_are_claimed_in_priority_order(broker: &dyn Broker) {
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

/// The API's group commit: batches with their own lists and times to live, in one call.
pub(crate) fn ingest_batches_stores_each_batch_on_its_own_lists(broker: &dyn Broker) {
    let to_a: Vec<HotVcon> = (0..3)
        .map(|i| hot_at(&uuid(i), 1_700_000_000_000_000 + i as i64, &["name:A"]))
        .collect();
    let to_b: Vec<HotVcon> = (3..5).map(|i| hot(&uuid(i))).collect();
    let to_both = vec![hot(&uuid(5))];
    let (a, b, both) = (
        vec!["a".to_owned()],
        vec!["b".to_owned()],
        vec!["a".to_owned(), "b".to_owned()],
    );
    broker
        .ingest_batches(&[
            IngestBatch {
                vcons: &to_a,
                lists: &a,
                ttl: None,
            },
            IngestBatch {
                vcons: &to_b,
                lists: &b,
                ttl: Some(Duration::from_millis(1)),
            },
            IngestBatch {
                vcons: &to_both,
                lists: &both,
                ttl: None,
            },
        ])
        .unwrap();
    let uuids = |list: &str| -> Vec<String> {
        broker
            .entries(list, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.uuid)
            .collect()
    };
    assert_eq!(uuids("a"), [uuid(0), uuid(1), uuid(2), uuid(5)]);
    assert_eq!(uuids("b"), [uuid(3), uuid(4), uuid(5)]);
    let all: Vec<String> = (0..6).map(uuid).collect();
    let keys: Vec<&str> = all.iter().map(String::as_str).collect();
    assert!(
        broker.get_vcons(&keys).unwrap().iter().all(Option::is_some),
        "every vCon stored (the short time to live waits while they are queued)"
    );
    assert_eq!(
        broker.search(&["name:A".into()]).unwrap().len(),
        3,
        "indexed as by ingest"
    );
    assert_eq!(page(broker, 0, 10).len(), 6, "listed as by ingest");
}

/// A vCon of `kb` KiB (a large `analysis` body), the size of the reference's `cat1` and more.
pub(crate) fn large(uuid: &str, kb: usize, fill: char) -> HotVcon {
    let body: String = std::iter::repeat_n(fill, kb * 1024).collect();
    HotVcon {
        json: format!(
            r#"{{"uuid":"{uuid}","analysis":[{{"type":"transcript","body":"{body}"}}]}}"#
        )
        .into_bytes()
        .into(),
        ..hot(uuid)
    }
}

/// Large documents (the embedded broker keeps them as files) read back byte for byte, when
/// replaced by another large one or by a small one, and are gone once deleted.
pub(crate) fn large_documents_round_trip_replace_and_delete(broker: &dyn Broker) {
    let first = large(&uuid(1), 300, 'a');
    broker
        .ingest(std::slice::from_ref(&first), &["in".into()], None)
        .unwrap();
    let read = |i| broker.get_vcons(&[&uuid(i)]).unwrap().remove(0);
    assert_eq!(read(1).expect("stored").json, first.json);

    let second = large(&uuid(1), 200, 'b');
    broker.put_vcon(&second).unwrap();
    assert_eq!(read(1).expect("replaced").json, second.json);

    let small = hot(&uuid(1));
    broker.put_vcon(&small).unwrap();
    assert_eq!(read(1).expect("replaced by a small one").json, small.json);

    broker.put_vcon(&first).unwrap();
    assert_eq!(read(1).expect("large again").json, first.json);
    assert!(broker.delete_vcon(&uuid(1)).unwrap());
    assert!(read(1).is_none());
}

pub(crate) fn hot_store_round_trips_and_deletes(broker: &dyn Broker) {
    let v = hot_at(&uuid(7), 1_700_000_000_123_000, &["tel:+15551234567"]);
    broker.ingest(std::slice::from_ref(&v), &[], None).unwrap();
    let got = broker.get_vcons(&[&uuid(7), &uuid(8)]).unwrap();
    let first = got[0].as_ref().expect("stored");
    assert_eq!(first.json, v.json);
    assert_eq!(first.created_at_us, v.created_at_us);
    assert!(got[1].is_none());
    assert!(broker.delete_vcon(&uuid(7)).unwrap());
    assert!(!broker.delete_vcon(&uuid(7)).unwrap());
    assert!(broker.get_vcons(&[&uuid(7)]).unwrap()[0].is_none());
    assert_eq!(
        broker.search(&["tel:+15551234567".into()]).unwrap(),
        [uuid(7)],
        "delete_vcon keeps the index: the vCon lives on in the storages"
    );
}

pub(crate) fn listing_is_newest_first_paged_and_forget_removes_everything(broker: &dyn Broker) {
    let base = 1_700_000_000_000_000i64;
    let vcons: Vec<HotVcon> = (0..5)
        .map(|i| {
            hot_at(
                &uuid(i),
                base + i64::try_from(i).unwrap() * 10_000_000,
                &["name:Alice"],
            )
        })
        .collect();
    broker.ingest(&vcons, &[], None).unwrap();
    let page = |offset, limit| page(broker, offset, limit);
    assert_eq!(page(0, 2), [uuid(4), uuid(3)]);
    assert_eq!(page(2, 2), [uuid(2), uuid(1)]);
    assert_eq!(page(4, 2), [uuid(0)]);
    let window = broker
        .list_uuids(&ListingPage {
            since_us: Some(base + 10_000_000),
            until_us: Some(base + 30_000_000),
            offset: 0,
            limit: 50,
        })
        .unwrap();
    assert_eq!(window, [uuid(3), uuid(2), uuid(1)]);

    assert!(broker.forget(&uuid(4)).unwrap());
    assert_eq!(page(0, 1), [uuid(3)], "forget removes the listing entry");
    let mut found = broker.search(&["name:Alice".into()]).unwrap();
    found.sort();
    assert_eq!(found, [uuid(0), uuid(1), uuid(2), uuid(3)]);
    assert!(broker.get_vcons(&[&uuid(4)]).unwrap()[0].is_none());
}

pub(crate) fn search_intersects_and_an_unmatched_term_empties_it(broker: &dyn Broker) {
    broker
        .ingest(
            &[
                hot_at(&uuid(1), 1, &["tel:+1555", "name:Bob"]),
                hot_at(&uuid(2), 2, &["tel:+1555"]),
            ],
            &[],
            None,
        )
        .unwrap();
    let mut both = broker.search(&["tel:+1555".into()]).unwrap();
    both.sort();
    assert_eq!(both, [uuid(1), uuid(2)]);
    assert_eq!(
        broker
            .search(&["tel:+1555".into(), "name:Bob".into()])
            .unwrap(),
        [uuid(1)]
    );
    assert!(broker
        .search(&["tel:+1555".into(), "mailto:nobody@example.com".into()])
        .unwrap()
        .is_empty());
}

pub(crate) fn storing_a_vcon_again_replaces_its_terms_and_listing_time(broker: &dyn Broker) {
    let many: Vec<String> = (0..11).map(|i| format!("tel:+1555000{i:02}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    broker
        .ingest(
            &[
                hot_at(&uuid(1), 1_000_000, &["name:Ann", "tel:+1000"]),
                hot_at(&uuid(2), 2_000_000, &["name:Ann"]),
                hot_at(&uuid(3), 3_000_000, &many),
            ],
            &[],
            None,
        )
        .unwrap();
    assert_eq!(page(broker, 0, 10), [uuid(3), uuid(2), uuid(1)]);
    // Stored again, later and with other parties: its old terms go, its new ones come, and it
    // moves up the listing.
    broker
        .ingest(
            &[hot_at(
                &uuid(1),
                4_000_000,
                &["tel:+1000", "mailto:ann@example.com"],
            )],
            &[],
            None,
        )
        .unwrap();
    let search = |term: &str| {
        let mut found = broker.search(&[term.to_owned()]).unwrap();
        found.sort();
        found
    };
    assert_eq!(
        search("name:Ann"),
        [uuid(2)],
        "the replaced term no longer finds it"
    );
    assert_eq!(search("tel:+1000"), [uuid(1)], "a kept term finds it once");
    assert_eq!(search("mailto:ann@example.com"), [uuid(1)]);
    assert_eq!(page(broker, 0, 10), [uuid(1), uuid(3), uuid(2)]);
    for term in many {
        assert_eq!(
            search(term),
            [uuid(3)],
            "{term}: every term of a many-party vCon"
        );
    }
}

pub(crate) fn expiry_never_drops_a_vcon_that_still_waits_in_a_list(broker: &dyn Broker) {
    let ttl = Some(Duration::from_millis(1));
    broker
        .ingest(&[hot(&uuid(1))], &["in".into()], ttl)
        .unwrap();
    broker.ingest(&[hot(&uuid(2))], &[], ttl).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    broker.purge_expired().unwrap();
    let got = broker.get_vcons(&[&uuid(1), &uuid(2)]).unwrap();
    assert!(got[0].is_some(), "a queued vCon outlives its time to live");
    assert!(got[1].is_none(), "an unqueued one expires");
}
