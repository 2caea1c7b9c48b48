//! The embedded broker's large documents, kept as files in `<broker>-documents/`: where they
//! go, that every way a vCon leaves takes its file with it (kept as a spare to write the next
//! one over), and what happens when a file is lost, left behind, or cannot be written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use vcon_broker::{Broker, BrokerError, SqliteBroker};

use crate::contract::{self, hot, large, uuid};
use crate::sqlite::poison_list;

fn documents_dir(broker: &Path) -> PathBuf {
    let mut dir = broker.as_os_str().to_owned();
    dir.push("-documents");
    dir.into()
}

/// The files in the documents directory, with their contents: the documents (`spares:
/// false`) or the spares.
fn entries(broker: &Path, spares: bool) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(documents_dir(broker)) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("spare-")
                == spares
        })
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

fn files(broker: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    entries(broker, false)
}

fn spares(broker: &Path) -> usize {
    entries(broker, true).len()
}

/// The file the row of vCon `i` names.
fn file_of(broker: &Path, i: usize) -> PathBuf {
    let name: String = rusqlite::Connection::open(broker)
        .unwrap()
        .query_row(
            "SELECT document_file FROM vcons WHERE uuid = ?1",
            [uuid(i)],
            |row| row.get(0),
        )
        .unwrap();
    documents_dir(broker).join(name)
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite");
    (dir, path)
}

#[test]
fn a_large_document_is_a_file_of_its_own_and_small_ones_stay_in_the_database() {
    let (_dir, path) = setup();
    for broker in [
        SqliteBroker::open(&path).unwrap(),
        SqliteBroker::open_for_run(&path).unwrap(),
    ] {
        let big = large(&uuid(1), 100, 'x');
        broker
            .ingest(&[big.clone(), hot(&uuid(2))], &["in".into()], None)
            .unwrap();
        let on_disk = files(&path);
        assert_eq!(on_disk.len(), 1, "one file, for the large vCon only");
        assert_eq!(&*on_disk[0].1, &*big.json, "the document as given");
        let db_bytes: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT length(json) FROM vcons WHERE uuid = ?1",
                [uuid(1)],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(db_bytes, 0, "the row holds only the file's name");
        let got = broker.get_vcons(&[&uuid(1), &uuid(2)]).unwrap();
        assert_eq!(got[0].as_ref().unwrap().json, big.json);
        assert!(broker.forget(&uuid(1)).unwrap());
        assert!(broker.forget(&uuid(2)).unwrap());
        assert!(files(&path).is_empty());
    }
}

#[test]
fn every_way_a_vcon_leaves_removes_its_file() {
    let (_dir, path) = setup();
    let broker = SqliteBroker::open(&path).unwrap();
    let ingest = |i: usize, ttl: Option<Duration>| {
        broker
            .ingest(&[large(&uuid(i), 80, 'y')], &[], ttl)
            .unwrap();
    };

    // Replaced: the old file goes once the new one is in.
    ingest(1, None);
    broker.put_vcon(&large(&uuid(1), 90, 'z')).unwrap();
    let on_disk = files(&path);
    assert_eq!(on_disk.len(), 1, "the replaced document's file is given up");
    assert!(on_disk[0].1.ends_with(b"zzz\"}]}"));

    assert!(broker.delete_vcon(&uuid(1)).unwrap());
    assert!(files(&path).is_empty(), "deleted");

    ingest(2, None);
    assert!(broker.forget(&uuid(2)).unwrap());
    assert!(files(&path).is_empty(), "forgotten");

    ingest(3, Some(Duration::from_millis(1)));
    // A link's change keeps the time to live it was ingested with.
    broker.put_vcon(&large(&uuid(3), 85, 'q')).unwrap();
    ingest(4, None);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(broker.purge_expired().unwrap(), 1);
    assert_eq!(
        files(&path).len(),
        1,
        "the expired one's file is gone, not the other's"
    );
    assert!(broker.get_vcons(&[&uuid(4)]).unwrap()[0].is_some());
}

#[test]
fn a_file_given_up_is_written_over_by_the_next_large_vcon() {
    let (_dir, path) = setup();
    let broker = SqliteBroker::open(&path).unwrap();
    broker
        .ingest(&[large(&uuid(1), 300, 'l')], &[], None)
        .unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let first = inode(&file_of(&path, 1));
    assert!(broker.delete_vcon(&uuid(1)).unwrap());
    assert_eq!(spares(&path), 1, "kept as a spare");

    // Shorter than the spare's old document: the spare is cut to it.
    let next = large(&uuid(2), 80, 's');
    broker
        .ingest(std::slice::from_ref(&next), &[], None)
        .unwrap();
    assert_eq!(spares(&path), 0, "the spare was used");
    assert_eq!(
        inode(&file_of(&path, 2)),
        first,
        "written over, not created"
    );
    assert_eq!(
        broker.get_vcons(&[&uuid(2)]).unwrap()[0]
            .as_ref()
            .unwrap()
            .json,
        next.json
    );
    assert_eq!(std::fs::read(file_of(&path, 2)).unwrap(), &*next.json);
}

#[test]
fn a_failed_ingest_takes_its_document_files_back() {
    let (_dir, path) = setup();
    let broker = SqliteBroker::open(&path).unwrap();
    poison_list(&path);
    let err = broker
        .ingest(&[large(&uuid(1), 100, 'p')], &["poison".to_owned()], None)
        .unwrap_err();
    assert!(err.to_string().contains("poisoned list"), "{err}");
    assert!(
        files(&path).is_empty(),
        "a file of a rolled-back ingest was left"
    );
    assert!(broker.get_vcons(&[&uuid(1)]).unwrap()[0].is_none());
}

#[test]
fn a_document_file_cut_short_or_gone_reads_as_absent_and_the_others_still_read() {
    let (_dir, path) = setup();
    let broker = SqliteBroker::open(&path).unwrap();
    for i in 1..=3 {
        broker
            .ingest(&[large(&uuid(i), 70, 'c')], &[], None)
            .unwrap();
    }
    broker
        .ingest(&[large(&uuid(4), 70, 'c')], &[], None)
        .unwrap();
    // As a power loss may leave them: cut short, never written, or holding other bytes of the
    // same length (a spare's earlier document).
    let cut = std::fs::OpenOptions::new()
        .write(true)
        .open(file_of(&path, 1))
        .unwrap();
    cut.set_len(4096).unwrap();
    std::fs::remove_file(file_of(&path, 2)).unwrap();
    std::fs::write(file_of(&path, 3), &*large(&uuid(9), 70, 'c').json).unwrap();

    let got = broker
        .get_vcons(&[&uuid(1), &uuid(2), &uuid(3), &uuid(4)])
        .unwrap();
    assert!(
        got[0].is_none(),
        "a truncated document must not be answered"
    );
    assert!(got[1].is_none());
    assert!(
        got[2].is_none(),
        "another vCon's document must not be answered"
    );
    assert_eq!(got[3].as_ref().unwrap().json, large(&uuid(4), 70, 'c').json);
}

#[test]
fn the_run_sweeps_old_document_files_no_vcon_names_and_keeps_the_rest() {
    let (_dir, path) = setup();
    let client = SqliteBroker::open(&path).unwrap();
    client
        .ingest(&[large(&uuid(1), 70, 'k')], &[], None)
        .unwrap();
    drop(client);
    let dir = documents_dir(&path);
    let orphan = |name: &str, age: Duration| {
        let file = std::fs::File::create(dir.join(name)).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    };
    // Left by a process that died before its commit, an hour ago; and one that may be
    // another process's ingest in progress.
    orphan(
        "0123456789abcdef0123456789abcdef.json",
        Duration::from_secs(3600),
    );
    orphan(
        "fedcba9876543210fedcba9876543210.json",
        Duration::from_secs(1),
    );
    // Not the broker's: never touched.
    orphan("notes.txt", Duration::from_secs(3600));
    // An earlier run's spare: this run writes over it.
    orphan(
        "spare-00000000000000000000000000000001.json",
        Duration::from_secs(3600),
    );

    let broker = SqliteBroker::open_for_run(&path).unwrap();
    assert_eq!(
        spares(&path),
        2,
        "the earlier run's spare, and the old orphan as one"
    );
    broker
        .ingest(&[large(&uuid(2), 70, 'n')], &[], None)
        .unwrap();
    assert_eq!(spares(&path), 1, "a spare was used");
    assert!(broker.forget(&uuid(2)).unwrap());
    let mut names: Vec<String> = files(&path)
        .into_iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.contains(&"0123456789abcdef0123456789abcdef.json".to_owned()));
    assert!(names.contains(&"fedcba9876543210fedcba9876543210.json".to_owned()));
    assert!(names.contains(&"notes.txt".to_owned()));
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

/// A file made before documents were kept as files: its vcons table gets the columns, its rows
/// read as before, and a large vCon stored over one of them goes to a file.
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
    assert_eq!(
        broker.get_vcons(&[&uuid(1)]).unwrap()[0]
            .as_ref()
            .unwrap()
            .json,
        hot(&uuid(1)).json
    );
    let big = large(&uuid(1), 100, 'm');
    broker.put_vcon(&big).unwrap();
    assert_eq!(files(&path).len(), 1);
    assert_eq!(
        broker.get_vcons(&[&uuid(1)]).unwrap()[0]
            .as_ref()
            .unwrap()
            .json,
        big.json
    );
    drop(broker);
    drop(SqliteBroker::open(&path).unwrap());
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

    // Staged, then ingested: its file is the one recorded, not a second copy.
    let mut big = large(&uuid(1), 120, 'g');
    let staged = broker.stage_document(&big.json).unwrap().expect("staged");
    assert_eq!(files(&path).len(), 1);
    big.staged = Some(Arc::new(staged));
    broker
        .ingest(std::slice::from_ref(&big), &["in".into()], None)
        .unwrap();
    drop(big);
    assert_eq!(
        files(&path).len(),
        1,
        "the staged file was recorded, not written again"
    );
    assert_eq!(
        broker.get_vcons(&[&uuid(1)]).unwrap()[0]
            .as_ref()
            .unwrap()
            .json,
        large(&uuid(1), 120, 'g').json
    );

    // Staged for a document found invalid: given up when dropped.
    let unused = broker
        .stage_document(&large(&uuid(2), 120, 'u').json)
        .unwrap();
    assert_eq!(files(&path).len(), 2);
    drop(unused);
    assert_eq!(
        files(&path).len(),
        1,
        "a staged file never ingested was left"
    );

    // Staged for an ingest that failed: given up too, once its vCon is dropped.
    poison_list(&path);
    let mut failing = large(&uuid(3), 120, 'f');
    failing.staged = Some(Arc::new(
        broker.stage_document(&failing.json).unwrap().unwrap(),
    ));
    assert!(broker
        .ingest(std::slice::from_ref(&failing), &["poison".into()], None)
        .is_err());
    assert_eq!(
        files(&path).len(),
        2,
        "kept while its vCon may be ingested again"
    );
    broker
        .ingest(std::slice::from_ref(&failing), &["in".into()], None)
        .unwrap();
    drop(failing);
    assert_eq!(
        files(&path).len(),
        2,
        "the retried ingest recorded the staged file"
    );
    assert!(broker.get_vcons(&[&uuid(3)]).unwrap()[0].is_some());

    // A staged document of another broker is not taken: this one writes its own file.
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
    assert_eq!(files(&path).len(), 3);
    assert!(
        files(&other_path).is_empty(),
        "the other broker's staged file is given up"
    );
}

/// A reader does not hold the broker's connection while it reads a document file, so a writer
/// may replace the vCon meanwhile (its old file given up as a spare and written over by the
/// next large document). A reader must then answer one whole version or the other, never
/// nothing and never a mix; writers in this process and in another (a second handle) alike.
#[test]
fn a_vcon_replaced_while_it_is_read_reads_as_one_version_or_the_other() {
    let (_dir, path) = setup();
    let broker = Arc::new(SqliteBroker::open(&path).unwrap());
    let other_process = SqliteBroker::open(&path).unwrap();
    let versions = [large(&uuid(1), 90, 'a'), large(&uuid(1), 140, 'b')];
    broker.put_vcon(&versions[0]).unwrap();
    // Replaced 300 times, read all the while.
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (broker, writes, versions) =
            (Arc::clone(&broker), Arc::clone(&writes), versions.clone());
        std::thread::spawn(move || {
            for i in 0..300 {
                let version = &versions[i % 2];
                if i % 3 == 0 {
                    other_process.put_vcon(version).unwrap();
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
}
