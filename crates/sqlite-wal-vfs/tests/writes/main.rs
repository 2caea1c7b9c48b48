//! A commit of many pages reaches the WAL in one write (a test binary of its own: the counters
//! are per process).
#![allow(clippy::unwrap_used, missing_docs)]

use rusqlite::params;

#[test]
fn each_commit_is_one_write_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let conn = sqlite_wal_vfs::open(&dir.path().join("db.sqlite")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, a TEXT UNIQUE, b TEXT UNIQUE, c TEXT UNIQUE, body BLOB);",
    )
    .unwrap();
    // Warm up: the first frames after opening go straight through until the end is known.
    conn.execute(
        "INSERT INTO docs (a, b, c, body) VALUES ('x', 'y', 'z', zeroblob(10))",
        [],
    )
    .unwrap();
    let before = sqlite_wal_vfs::wal_writes();
    let commits = 200u64;
    for i in 0..commits {
        let k = |salt: u64| format!("{:x}", (i + salt).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        conn.execute(
            "INSERT INTO docs (a, b, c, body) VALUES (?1, ?2, ?3, zeroblob(6000))",
            params![k(1), k(2), k(3)],
        )
        .unwrap();
    }
    let after = sqlite_wal_vfs::wal_writes();
    let (calls, frames) = (after.calls - before.calls, after.frames - before.frames);
    // Each commit changes the table, its overflow pages and three indexes: several frames.
    assert!(
        frames >= 4 * commits,
        "{frames} frames for {commits} commits"
    );
    // One write per commit; the log starting over (every 1000 pages here, SQLite's default
    // checkpoint) costs its header and one frame straight through.
    assert!(
        calls <= commits + 3 * (frames / 1000 + 1),
        "{calls} writes for {commits} commits"
    );
}
