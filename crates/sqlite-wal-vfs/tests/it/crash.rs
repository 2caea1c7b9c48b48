//! A process that dies right after its commits: a fresh process finds every one of them.
//!
//! The test runs itself as a child (the same test binary, filtered to this test, with an
//! environment variable naming the database): the child commits and aborts without closing
//! anything, so nothing the VFS gathered can be written by a close; the parent then recovers
//! the log through plain SQLite, which checks every frame's checksum.

use std::process::Command;

use crate::{insert, plain, summary, writer};

const CHILD_DB: &str = "SQLITE_WAL_VFS_TEST_CHILD_DB";
const COMMITS: i64 = 120;

#[test]
fn commits_survive_the_writer_aborting() {
    if let Some(path) = std::env::var_os(CHILD_DB) {
        let w = writer(std::path::Path::new(&path));
        for i in 1..=COMMITS {
            insert(&w, i, 4_000 + (i as usize % 7) * 1000);
        }
        // Last, a spilling transaction that rewrites its own frames (checksum rewrite).
        w.pragma_update(None, "cache_size", 5).unwrap();
        w.execute_batch("BEGIN IMMEDIATE").unwrap();
        for round in 1..=3 {
            w.execute("UPDATE docs SET n = n + ?1", [round]).unwrap();
        }
        w.execute_batch("COMMIT").unwrap();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::commits_survive_the_writer_aborting",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_DB, &path)
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort");
    assert!(
        dir.path().join("db.sqlite-wal").is_file(),
        "the child's log is still there to recover"
    );
    let (count, sum, _, check) = summary(&plain(&path));
    assert_eq!(check, "ok");
    assert_eq!(count, COMMITS);
    assert_eq!(sum, (1..=COMMITS).sum::<i64>() + COMMITS * 6);
}
