//! Batches and concurrency: one transaction per batch, many threads on one storage.

use std::time::{Duration, Instant};

use plugin_loader::{ErrorKind, VconRecord};

use crate::fixtures::{fresh_db, inspect, open_path, uuid, Doc};

#[test]
fn save_many_of_a_thousand_is_one_fast_transaction() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let docs: Vec<Doc> = (0..1000)
        .map(|n| Doc::synthetic(&uuid(n), "2024-05-06T07:08:09Z"))
        .collect();
    let records: Vec<_> = docs.iter().map(Doc::record).collect();
    let started = Instant::now();
    let results = storage.save_many(&records).unwrap();
    let took = started.elapsed();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(Result::is_ok));
    // One commit, not a thousand: well under a second even on a slow disk (measured ~10 ms).
    assert!(
        took < Duration::from_secs(3),
        "save_many of 1000 took {took:?}"
    );
    assert_eq!(storage.count().unwrap(), 1000);
    let uuids: Vec<&str> = docs.iter().map(|d| d.uuid.as_str()).collect();
    let got = storage.get_many(&uuids).unwrap();
    for (doc, got) in docs.iter().zip(got) {
        assert_eq!(got.as_deref(), Some(doc.json.as_slice()));
    }
    // Saving the same batch again replaces.
    assert!(storage
        .save_many(&records)
        .unwrap()
        .iter()
        .all(Result::is_ok));
    assert_eq!(storage.count().unwrap(), 1000);
    drop(storage);
    // Every row of the batch carries the batch's single write time.
    let distinct: i64 = inspect(&path)
        .query_row("SELECT COUNT(DISTINCT updated_at) FROM vcons", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(distinct, 1);
    // delete_many removes them in one go.
    let storage = open_path(&path);
    assert!(storage.delete_many(&uuids).unwrap().into_iter().all(|r| r));
    assert_eq!(storage.count().unwrap(), 0);
}

#[test]
fn a_bad_record_costs_only_itself() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let good: Vec<Doc> = (0..4)
        .map(|n| Doc::synthetic(&uuid(n), "2024-05-06T07:08:09Z"))
        .collect();
    let not_utf8: &[u8] = b"{\"uuid\":\"x\",\"subject\":\"\xff\xfe\"}";
    let bad_uuid = uuid(50);
    let mut records: Vec<VconRecord<'_>> = good.iter().map(Doc::record).collect();
    records.insert(
        2,
        VconRecord::new(&bad_uuid, not_utf8, 1_700_000_000_000_000),
    );
    // A created_at the fixed-width text cannot hold (year 11000).
    let far_uuid = uuid(51);
    records.push(VconRecord::new(&far_uuid, b"{}", 285_000_000_000_000_000));
    let results = storage.save_many(&records).unwrap();
    assert_eq!(results.len(), 6);
    for (i, result) in results.iter().enumerate() {
        match i {
            2 | 5 => {
                let err = result.as_ref().unwrap_err();
                assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
            }
            _ => assert!(result.is_ok(), "record {i}: {result:?}"),
        }
    }
    assert!(results[2].as_ref().unwrap_err().message.contains("UTF-8"));
    assert_eq!(storage.count().unwrap(), 4);
    assert!(!storage.exists(&bad_uuid).unwrap());
}

#[test]
fn eight_threads_saving_two_hundred_each() {
    let (_dir, path) = fresh_db();
    let storage = open_path(&path);
    let docs: Vec<Vec<Doc>> = (0..8u64)
        .map(|t| {
            (0..200u64)
                .map(|n| Doc::synthetic(&uuid(t * 1000 + n), "2024-05-06T07:08:09Z"))
                .collect()
        })
        .collect();
    std::thread::scope(|scope| {
        let storage = &storage;
        let writers: Vec<_> = docs
            .iter()
            .map(|batch| {
                scope.spawn(move || {
                    for doc in batch {
                        storage.save(&doc.record()).unwrap();
                    }
                })
            })
            .collect();
        // Readers at the same time (WAL: they do not wait for the writer).
        let reader = scope.spawn(move || {
            for _ in 0..200 {
                storage.count().unwrap();
                storage.get(&uuid(0)).unwrap();
            }
        });
        for writer in writers {
            writer.join().unwrap();
        }
        reader.join().unwrap();
    });
    assert_eq!(storage.count().unwrap(), 1600);
    for doc in docs.iter().flatten().step_by(37) {
        assert_eq!(storage.get(&doc.uuid).unwrap().unwrap(), doc.json);
    }
}
