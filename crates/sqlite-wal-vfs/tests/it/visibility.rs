//! Every commit is in the file when SQLite publishes it.

use std::path::Path;

use rusqlite::Connection;

use crate::{insert, plain, summary, writer};

/// A writer with a page cache of five pages, holding `rows` rows: a big transaction on it
/// writes (spills) frames to the log before its commit.
fn spilling_writer(path: &Path, rows: i64, size: usize) -> Connection {
    let w = writer(path);
    w.pragma_update(None, "cache_size", 5).unwrap();
    for i in 1..=rows {
        insert(&w, i, size);
    }
    w
}

#[test]
fn a_plain_connection_sees_each_commit_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let w = writer(&path);
    let r = plain(&path);
    let (mut count, sum) = (0, 0);
    for i in 1..=300 {
        w.execute_batch("BEGIN IMMEDIATE").unwrap();
        insert(&w, i, 5_000);
        insert(&w, -i, 300);
        w.execute_batch("COMMIT").unwrap();
        count += 2;
        let (seen, seen_sum, _, _) = summary(&r);
        assert_eq!(seen, count, "after commit {i}");
        assert_eq!(seen_sum, sum, "after commit {i}");
        if i % 50 == 0 {
            // A checkpoint from the reader's side: the log starts over on the next commit.
            r.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .unwrap();
        }
    }
    assert_eq!(summary(&r).3, "ok");
}

#[test]
fn a_rolled_back_transaction_that_spilled_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let w = spilling_writer(&path, 20, 2_000);
    w.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 1000..1400 {
        insert(&w, i, 3_000);
    }
    w.execute_batch("ROLLBACK").unwrap();
    for i in 21..=40 {
        insert(&w, i, 2_000);
    }
    let (count, sum, _, check) = summary(&plain(&path));
    assert_eq!((count, sum, check.as_str()), (40, (1..=40).sum(), "ok"));
}

#[test]
fn pages_rewritten_within_a_spilling_transaction_commit_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let w = spilling_writer(&path, 200, 1_000);
    // One transaction that changes every row several times: pages spill to the log and are
    // then written again in place, and the commit rewrites the frames' checksums.
    w.execute_batch("BEGIN IMMEDIATE").unwrap();
    for round in 1..=4 {
        w.execute(
            "UPDATE docs SET n = n + ?1, body = zeroblob(900 + ?1)",
            [round],
        )
        .unwrap();
    }
    w.execute_batch("COMMIT").unwrap();
    let (count, sum, bytes, check) = summary(&plain(&path));
    assert_eq!(check, "ok");
    assert_eq!(count, 200);
    assert_eq!(sum, (1..=200).sum::<i64>() + 200 * 10);
    assert_eq!(bytes, 200 * 904);
}

#[test]
fn a_commit_larger_than_one_write_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let w = writer(&path);
    // About 2 MB of frames in one commit: more than the default VFS takes in one write call.
    w.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 1..=400 {
        insert(&w, i, 5_000);
    }
    w.execute_batch("COMMIT").unwrap();
    let (count, sum, bytes, check) = summary(&plain(&path));
    assert_eq!(
        (count, sum, bytes, check.as_str()),
        (400, (1..=400).sum(), 400 * 5_000, "ok")
    );
}
