//! `cargo xtask bench wal-vfs`: one commit of a broker-like transaction, through SQLite's
//! default VFS and through this one, on real files in the system's temporary directory.
//!
//! Each iteration commits one transaction that stores a 5 KB document and five short index
//! entries at random places (about a dozen pages, as a `POST /vcon` does), in WAL mode at
//! `synchronous=NORMAL`, the same for both rows. As in the broker, commits do not checkpoint:
//! every 100 commits the bench checkpoints outside the timed part, so the WAL starts over and
//! commits overwrite it as they do in a running host. The difference between the rows is the
//! write calls: two per page with the default VFS, one per commit with this one.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rusqlite::{params, Connection};

fn prepare(conn: &Connection) {
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute_batch(
        "CREATE TABLE docs (key TEXT PRIMARY KEY, body BLOB, at INTEGER);
         CREATE INDEX docs_at ON docs(at);
         CREATE TABLE terms (term TEXT, key TEXT, PRIMARY KEY (term, key)) WITHOUT ROWID;",
    )
    .unwrap();
}

fn commit(conn: &Connection, i: u64, body: &[u8]) {
    let key = |salt: u64| {
        format!(
            "{:016x}",
            (i * 8 + salt).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )
    };
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn.prepare_cached("INSERT INTO docs (key, body, at) VALUES (?1, ?2, ?3)")
        .unwrap()
        .execute(params![key(0), body, i as i64])
        .unwrap();
    let mut term = conn
        .prepare_cached("INSERT INTO terms (term, key) VALUES (?1, ?2)")
        .unwrap();
    for salt in 1..=5 {
        term.execute(params![key(salt), key(0)]).unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

fn bench(c: &mut Criterion) {
    let body = vec![7u8; 5 * 1024];
    let mut group = c.benchmark_group("commit of a 5 KB document and five index entries");
    for (name, gathered) in [("default VFS", false), ("sqlite-wal-vfs", true)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.sqlite");
        let conn = if gathered {
            sqlite_wal_vfs::open(&path).unwrap()
        } else {
            Connection::open(&path).unwrap()
        };
        prepare(&conn);
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut timed = Duration::ZERO;
                for _ in 0..iterations {
                    i += 1;
                    let started = Instant::now();
                    commit(&conn, i, &body);
                    timed += started.elapsed();
                    if i % 100 == 0 {
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                            .unwrap();
                    }
                }
                timed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
