//! The VFS against real SQLite files: what it writes must read back, through a connection that
//! does not use it, at once and after a crash.
#![allow(clippy::unwrap_used, missing_docs)]

mod crash;
mod visibility;

use std::path::Path;

use rusqlite::Connection;

/// A writer through the VFS in WAL mode, as the broker opens it.
pub fn writer(path: &Path) -> Connection {
    let conn = sqlite_wal_vfs::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS docs (id INTEGER PRIMARY KEY, key TEXT UNIQUE, body BLOB, n INTEGER);
         CREATE INDEX IF NOT EXISTS docs_n ON docs(n);",
    )
    .unwrap();
    conn
}

/// A reader that does not use the VFS.
pub fn plain(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// Inserts one document of `size` bytes with a random-looking key (so several b-tree pages
/// change per commit, as in the broker).
pub fn insert(conn: &Connection, i: i64, size: usize) {
    let key = format!("{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let body: Vec<u8> = (0..size).map(|b| (b as i64 + i) as u8).collect();
    conn.execute(
        "INSERT INTO docs (key, body, n) VALUES (?1, ?2, ?3)",
        rusqlite::params![key, body, i],
    )
    .unwrap();
}

/// `(count, sum of n, sum of body lengths)` and the integrity check, read by `conn`.
pub fn summary(conn: &Connection) -> (i64, i64, i64, String) {
    let (count, sum, bytes) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(n), 0), coalesce(sum(length(body)), 0) FROM docs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    (count, sum, bytes, check)
}
