//! The embedded broker's large documents, appended to segment files in `<broker>-documents/`:
//! where they go, that a segment goes once no vCon names it and no handle may add to it, and
//! what happens when a segment is lost, left behind, or cannot be written.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vcon_broker::{Broker, BrokerError, SqliteBroker};

use crate::contract::{self, hot, large, uuid};
use crate::sqlite::poison_list;

fn documents_dir(broker: &Path) -> PathBuf {
    let mut dir = broker.as_os_str().to_owned();
    dir.push("-documents");
    dir.into()
}

/// The names in the documents directory, sorted.
fn names(broker: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(documents_dir(broker)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The segments in the documents directory.
fn segments(broker: &Path) -> Vec<String> {
    names(broker)
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect()
}

/// Where the row of vCon `i` says its document is: the segment's path, the offset and length.
fn place_of(broker: &Path, i: usize) -> (PathBuf, Option<u64>, usize) {
    let (name, offset, len): (String, Option<i64>, i64) = rusqlite::Connection::open(broker)
        .unwrap()
        .query_row(
            "SELECT document_file, document_offset, document_len FROM vcons WHERE uuid = ?1",
            [uuid(i)],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    (
        documents_dir(broker).join(name),
        offset.map(|o| o as u64),
        len as usize,
    )
}

/// The bytes the row of vCon `i` names, read from its segment directly.
fn bytes_at(broker: &Path, i: usize) -> Vec<u8> {
    let (path, offset, len) = place_of(broker, i);
    let mut bytes = vec![0; len];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut bytes, offset.unwrap())
        .unwrap();
    bytes
}

/// The hot copy of vCon `i`, which must be there.
fn hot_json(broker: &SqliteBroker, i: usize) -> bytes::Bytes {
    broker.get_vcons(&[&uuid(i)]).unwrap()[0]
        .as_ref()
        .expect("the hot copy")
        .json
        .clone()
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    (dir, path)
}

/// Waits up to five seconds for `done`: a `run` handle's checkpoint thread removes segments in
/// its rounds, every 100 ms.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(5), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn large_documents_share_a_segment_and_small_ones_stay_in_the_database() {
    let (_dir, path) = setup();
    for broker in [
        SqliteBroker::open(&path).unwrap(),
        SqliteBroker::open_for_run(&path).unwrap(),
    ] {
        let (first, second) = (large(&uuid(1), 100, 'x'), large(&uuid(3), 70, 'v'));
        broker
            .ingest(&[first.clone(), hot(&uuid(2))], &["in".into()], None)
            .unwrap();
        broker
            .ingest(std::slice::from_ref(&second), &[], None)
            .unwrap();
        assert_eq!(segments(&path).len(), 1, "{:?}", names(&path));
        let (one, at_one, _) = place_of(&path, 1);
        let (three, at_three, _) = place_of(&path, 3);
        assert_eq!(one, three, "one segment for both");
        assert_eq!(at_one, Some(0));
        assert_eq!(
            at_three,
            Some((first.json.len() as u64).next_multiple_of(4096)),
            "the next document starts on the next page"
        );
        assert_eq!(bytes_at(&path, 1), &*first.json, "the document as given");
        assert_eq!(bytes_at(&path, 3), &*second.json);
        let db_bytes: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT length(json) FROM vcons WHERE uuid = ?1",
                [uuid(1)],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(db_bytes, 0, "the row holds only where the document is");
        let got = broker.get_vcons(&[&uuid(1), &uuid(2), &uuid(3)]).unwrap();
        assert_eq!(got[0].as_ref().unwrap().json, first.json);
        assert_eq!(got[1].as_ref().unwrap().json, hot(&uuid(2)).json);
        assert_eq!(got[2].as_ref().unwrap().json, second.json);
        for i in 1..=3 {
            assert!(broker.forget(&uuid(i)).unwrap());
        }
        drop(broker);
        assert!(
            segments(&path).is_empty(),
            "a closed handle's segment no vCon names is removed: {:?}",
            names(&path)
        );
    }
}

#[test]
fn a_segment_goes_with_the_last_vcon_it_holds_however_that_vcon_leaves() {
    let (_dir, path) = setup();
    // A handle that wrote four documents and closed: its segment stays while any is named.
    let writer = SqliteBroker::open(&path).unwrap();
    for i in 1..=3 {
        writer
            .ingest(&[large(&uuid(i), 80, 'y')], &[], None)
            .unwrap();
    }
    writer
        .ingest(
            &[large(&uuid(4), 80, 'y')],
            &[],
            Some(Duration::from_millis(1)),
        )
        .unwrap();
    drop(writer);
    let [closed] = <[String; 1]>::try_from(segments(&path)).unwrap();

    let broker = SqliteBroker::open(&path).unwrap();
    let kept = |what: &str| {
        assert!(
            segments(&path).contains(&closed),
            "removed after {what}, while a vCon still names it"
        )
    };
    // Replaced: the new version goes to this handle's own segment.
    broker.put_vcon(&large(&uuid(1), 90, 'z')).unwrap();
    assert_eq!(segments(&path).len(), 2);
    kept("a replace");
    assert!(broker.delete_vcon(&uuid(2)).unwrap());
    kept("a delete");
    assert!(broker.forget(&uuid(3)).unwrap());
    kept("a forget");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(broker.purge_expired().unwrap(), 1);
    assert_eq!(segments(&path).len(), 1, "{:?}", names(&path));
    assert!(
        !segments(&path).contains(&closed),
        "the last vCon it held expired"
    );
    assert!(broker.get_vcons(&[&uuid(1)]).unwrap()[0].is_some());
    drop(broker);

    // A `run` handle removes them too, in its checkpoint thread's rounds.
    let run = SqliteBroker::open_for_run(&path).unwrap();
    assert_eq!(segments(&path).len(), 1, "the vCon in it is still named");
    assert!(run.delete_vcon(&uuid(1)).unwrap());
    eventually("the run handle removes the segment", || {
        segments(&path).is_empty()
    });
}

#[test]
fn a_failed_ingest_leaves_no_document_behind() {
    let (_dir, path) = setup();
    let broker = SqliteBroker::open(&path).unwrap();
    poison_list(&path);
    let err = broker
        .ingest(&[large(&uuid(1), 100, 'p')], &["poison".to_owned()], None)
        .unwrap_err();
    assert!(err.to_string().contains("poisoned list"), "{err}");
    assert!(broker.get_vcons(&[&uuid(1)]).unwrap()[0].is_none());
    drop(broker);
    assert!(
        segments(&path).is_empty(),
        "the segment of a rolled-back ingest was left: {:?}",
        names(&path)
    );
}

#[test]
fn a_segment_cut_short_changed_or_gone_reads_as_absent_and_the_others_still_read() {
    let (_dir, path) = setup();
    let writer = SqliteBroker::open(&path).unwrap();
    for i in 1..=4 {
        writer
            .ingest(&[large(&uuid(i), 70, 'c')], &[], None)
            .unwrap();
    }
    drop(writer);
    let another = SqliteBroker::open(&path).unwrap();
    another
        .ingest(&[large(&uuid(5), 70, 'c')], &[], None)
        .unwrap();
    drop(another);

    // As a power loss may leave them: blocks never written (zeros), bytes of another document,
    // a segment cut short, one never named on the disk.
    let (segment, at_one, _) = place_of(&path, 1);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.write_all_at(&[0; 4096], at_one.unwrap() + 4096)
        .unwrap();
    let (_, at_three, _) = place_of(&path, 3);
    file.write_all_at(&large(&uuid(9), 70, 'c').json, at_three.unwrap())
        .unwrap();
    let (_, at_four, _) = place_of(&path, 4);
    file.set_len(at_four.unwrap() + 4096).unwrap();
    std::fs::remove_file(place_of(&path, 5).0).unwrap();

    let broker = SqliteBroker::open(&path).unwrap();
    let got = broker
        .get_vcons(&[&uuid(1), &uuid(2), &uuid(3), &uuid(4), &uuid(5)])
        .unwrap();
    assert!(got[0].is_none(), "zeroed bytes must not be answered");
    assert_eq!(got[1].as_ref().unwrap().json, large(&uuid(2), 70, 'c').json);
    assert!(
        got[2].is_none(),
        "another vCon's document must not be answered"
    );
    assert!(
        got[3].is_none(),
        "a cut-short document must not be answered"
    );
    assert!(got[4].is_none());
}

#[test]
fn the_run_sweeps_old_document_files_no_vcon_names_and_keeps_the_rest() {
    let (_dir, path) = setup();
    let client = SqliteBroker::open(&path).unwrap();
    client
        .ingest(&[large(&uuid(1), 70, 'k')], &[], None)
        .unwrap();
    drop(client);
    let [named] = <[String; 1]>::try_from(segments(&path)).unwrap();
    let dir = documents_dir(&path);
    let orphan = |name: &str, age: Duration| {
        let file = File::create(dir.join(name)).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        file
    };
    let hour = Duration::from_secs(3600);
    // Left by a process that died before its commit, an hour ago.
    orphan("0123456789abcdef0123456789abcdef.seg", hour);
    // Created a second ago: another process may be about to lock it.
    orphan(
        "1123456789abcdef0123456789abcdef.seg",
        Duration::from_secs(1),
    );
    // Another process's, still appended to: it holds the lock.
    let busy = orphan("2123456789abcdef0123456789abcdef.seg", hour);
    busy.lock_shared().unwrap();
    // An earlier version's file per document: an old orphan, one that may be an older
    // `ingest`'s commit in progress, and a spare.
    orphan("3123456789abcdef0123456789abcdef.json", hour);
    orphan(
        "4123456789abcdef0123456789abcdef.json",
        Duration::from_secs(1),
    );
    orphan("spare-5123456789abcdef0123456789abcdef.json", hour);
    // Not the broker's: never touched.
    orphan("notes.txt", hour);
    let old_named = dir.join(&named);
    File::options()
        .write(true)
        .open(&old_named)
        .unwrap()
        .set_modified(SystemTime::now() - hour)
        .unwrap();

    let broker = SqliteBroker::open_for_run(&path).unwrap();
    let mut expected = vec![
        named.clone(),
        "1123456789abcdef0123456789abcdef.seg".to_owned(),
        "2123456789abcdef0123456789abcdef.seg".to_owned(),
        "4123456789abcdef0123456789abcdef.json".to_owned(),
        "notes.txt".to_owned(),
    ];
    expected.sort();
    assert_eq!(names(&path), expected);
    assert!(broker.get_vcons(&[&uuid(1)]).unwrap()[0].is_some());
}

#[test]
fn an_unwritable_documents_directory_is_a_clear_error_and_nothing_is_ingested() {
    let (_dir, path) = setup();
    let broker = SqliteBroker::open(&path).unwrap();
    // A file where the directory should be.
    std::fs::write(documents_dir(&path), b"in the way").unwrap();
    let err = broker
        .ingest(
            &[hot(&uuid(1)), large(&uuid(2), 100, 'w')],
            &["in".into()],
            None,
        )
        .unwrap_err();
    assert!(matches!(err, BrokerError::Document { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("broker.sqlite-documents") && message.contains("disk full"),
        "{message}"
    );
    assert_eq!(broker.len("in").unwrap(), 0, "half a batch was queued");
    assert!(broker.get_vcons(&[&uuid(1)]).unwrap()[0].is_none());
    // Small vCons do not need the directory.
    broker
        .ingest(&[hot(&uuid(3))], &["in".into()], None)
        .unwrap();
    assert_eq!(broker.len("in").unwrap(), 1);
}

/// A file made before documents were kept apart: its vcons table gets the columns, its rows
/// read as before, and a large vCon stored over one of them goes to a segment.
#[test]
fn a_broker_file_from_before_document_files_is_migrated_on_open() {
    let (_dir, path) = setup();
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE vcons (uuid TEXT PRIMARY KEY, json BLOB NOT NULL,
                 created_at_us INTEGER NOT NULL, created_at_offset_s INTEGER NOT NULL,
                 updated_at_us INTEGER NOT NULL, subject TEXT, expires_at_us INTEGER);",
        )
        .unwrap();
        old.execute(
            "INSERT INTO vcons VALUES (?1, ?2, 1, 0, 1, NULL, NULL)",
            rusqlite::params![uuid(1), contract::hot(&uuid(1)).json.to_vec()],
        )
        .unwrap();
    }
    let broker = SqliteBroker::open(&path).unwrap();
    assert_eq!(hot_json(&broker, 1), hot(&uuid(1)).json);
    let big = large(&uuid(1), 100, 'm');
    broker.put_vcon(&big).unwrap();
    assert_eq!(segments(&path).len(), 1);
    assert_eq!(hot_json(&broker, 1), big.json);
    drop(broker);
    drop(SqliteBroker::open(&path).unwrap());
}

/// A file of the layout before segments, with a file per large document: it gets the offset
/// column, its rows read from their own files as before, and each file goes with its row.
#[test]
fn a_document_file_of_its_own_from_before_segments_still_reads_and_goes_with_its_row() {
    let (_dir, path) = setup();
    let dir = documents_dir(&path);
    std::fs::create_dir_all(&dir).unwrap();
    let old_names = [
        "aa23456789abcdef0123456789abcdef.json",
        "bb23456789abcdef0123456789abcdef.json",
    ];
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE vcons (uuid TEXT PRIMARY KEY, json BLOB NOT NULL,
                 created_at_us INTEGER NOT NULL, created_at_offset_s INTEGER NOT NULL,
                 updated_at_us INTEGER NOT NULL, subject TEXT, expires_at_us INTEGER,
                 document_file TEXT, document_len INTEGER, document_crc32 INTEGER);",
        )
        .unwrap();
        for (i, name) in [1, 2].into_iter().zip(old_names) {
            let json = large(&uuid(i), 90, 'o').json;
            std::fs::write(dir.join(name), &*json).unwrap();
            old.execute(
                "INSERT INTO vcons VALUES (?1, x'', 1, 0, 1, NULL, NULL, ?2, ?3, ?4)",
                rusqlite::params![
                    uuid(i),
                    name,
                    json.len() as i64,
                    i64::from(crc32fast::hash(&json))
                ],
            )
            .unwrap();
        }
    }
    let broker = SqliteBroker::open(&path).unwrap();
    let got = broker.get_vcons(&[&uuid(1), &uuid(2)]).unwrap();
    assert_eq!(got[0].as_ref().unwrap().json, large(&uuid(1), 90, 'o').json);
    assert_eq!(got[1].as_ref().unwrap().json, large(&uuid(2), 90, 'o').json);
    // Deleted, and replaced by a document that goes to a segment: each old file goes at once.
    assert!(broker.delete_vcon(&uuid(1)).unwrap());
    assert!(!names(&path).contains(&old_names[0].to_owned()));
    broker.put_vcon(&large(&uuid(2), 95, 'n')).unwrap();
    assert_eq!(names(&path), segments(&path), "{:?}", names(&path));
    assert_eq!(hot_json(&broker, 2), large(&uuid(2), 95, 'n').json);
}

#[test]
fn a_staged_document_is_recorded_by_its_ingest_and_given_up_if_never_ingested() {
    let (_dir, path) = setup();
    let broker = SqliteBroker::open_for_run(&path).unwrap();
    assert!(
        broker
            .stage_document(&hot(&uuid(1)).json)
            .unwrap()
            .is_none(),
        "a small document stays in its row"
    );
    // Where the next document goes once the documents of `kb` KiB before it are in.
    let slot = |kbs: &[usize]| -> u64 {
        kbs.iter()
            .map(|kb| (large(&uuid(1), *kb, 'g').json.len() as u64).next_multiple_of(4096))
            .sum()
    };

    // Staged, then ingested: the staged bytes are the ones recorded, not a second copy.
    let mut big = large(&uuid(1), 120, 'g');
    let staged = broker.stage_document(&big.json).unwrap().expect("staged");
    big.staged = Some(Arc::new(staged));
    broker
        .ingest(std::slice::from_ref(&big), &["in".into()], None)
        .unwrap();
    drop(big);
    assert_eq!(place_of(&path, 1).1, Some(0));
    assert_eq!(hot_json(&broker, 1), large(&uuid(1), 120, 'g').json);

    // Staged for an ingest that failed: kept while its vCon may be ingested again, and that
    // ingest records it.
    poison_list(&path);
    let mut failing = large(&uuid(3), 120, 'f');
    failing.staged = Some(Arc::new(
        broker.stage_document(&failing.json).unwrap().unwrap(),
    ));
    assert!(broker
        .ingest(std::slice::from_ref(&failing), &["poison".into()], None)
        .is_err());
    broker
        .ingest(std::slice::from_ref(&failing), &["in".into()], None)
        .unwrap();
    drop(failing);
    assert_eq!(place_of(&path, 3).1, Some(slot(&[120])), "the staged copy");
    assert!(broker.get_vcons(&[&uuid(3)]).unwrap()[0].is_some());

    // A staged document of another broker is not taken: this one writes its own copy.
    let (_other_dir, other_path) = setup();
    let other = SqliteBroker::open(&other_path).unwrap();
    let mut foreign = large(&uuid(4), 120, 'o');
    foreign.staged = Some(Arc::new(
        other.stage_document(&foreign.json).unwrap().unwrap(),
    ));
    broker
        .ingest(std::slice::from_ref(&foreign), &[], None)
        .unwrap();
    drop(foreign);
    assert_eq!(
        place_of(&path, 4).1,
        Some(slot(&[120, 120])),
        "written after the two before, and neither of those written twice"
    );
    assert_eq!(bytes_at(&path, 4), &*large(&uuid(4), 120, 'o').json);
    drop(other);
    assert!(
        segments(&other_path).is_empty(),
        "the other broker's staged document was never ingested: {:?}",
        names(&other_path)
    );

    // Staged for a document found invalid, and dropped: nothing names it, so a handle that
    // staged nothing else leaves no segment.
    let (_third_dir, third_path) = setup();
    let third = SqliteBroker::open_for_run(&third_path).unwrap();
    drop(
        third
            .stage_document(&large(&uuid(5), 120, 'u').json)
            .unwrap(),
    );
    drop(third);
    assert!(
        segments(&third_path).is_empty(),
        "a staged document never ingested was kept: {:?}",
        names(&third_path)
    );
}

/// A reader does not hold the broker's connection while it reads a document, so a writer may
/// replace the vCon meanwhile and the segment it was in be removed (here: the segments of
/// handles that wrote one version and closed). A reader must then answer one whole version or
/// the other, never nothing and never a mix; writers in this process and in another (a second
/// handle) alike.
#[test]
fn a_vcon_replaced_while_it_is_read_reads_as_one_version_or_the_other() {
    let (_dir, path) = setup();
    let broker = Arc::new(SqliteBroker::open(&path).unwrap());
    let versions = [large(&uuid(1), 90, 'a'), large(&uuid(1), 140, 'b')];
    broker.put_vcon(&versions[0]).unwrap();
    // Replaced 300 times, read all the while.
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (broker, writes, versions, path) = (
            Arc::clone(&broker),
            Arc::clone(&writes),
            versions.clone(),
            path.clone(),
        );
        std::thread::spawn(move || {
            for i in 0..300 {
                let version = &versions[i % 2];
                if i % 3 == 0 {
                    // Its segment is removed by the next replace, as the reader may read it.
                    SqliteBroker::open(&path)
                        .unwrap()
                        .put_vcon(version)
                        .unwrap();
                } else {
                    broker.put_vcon(version).unwrap();
                }
                writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let mut reads = 0;
    while writes.load(std::sync::atomic::Ordering::Relaxed) < 300 {
        let got = broker.get_vcons(&[&uuid(1)]).unwrap().remove(0);
        let got = got.unwrap_or_else(|| panic!("read {reads} found nothing"));
        assert!(
            versions.iter().any(|v| v.json == got.json),
            "read {reads} answered neither version ({} bytes)",
            got.json.len()
        );
        reads += 1;
    }
    writer.join().unwrap();
    assert!(
        reads > 100,
        "only {reads} reads while the vCon was replaced"
    );
    drop(broker);
    assert!(
        segments(&path).len() <= 1,
        "segments of closed handles were left: {:?}",
        names(&path)
    );
}
