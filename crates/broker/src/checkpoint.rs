//! WAL checkpoints of the embedded broker, off the request path.
//!
//! SQLite copies the WAL back into the database (a checkpoint) in whichever commit takes the WAL
//! past 1000 pages, and at `synchronous=NORMAL` a checkpoint fsyncs the WAL and the database:
//! every hundredth `POST /vcon` or so waited for those fsyncs, milliseconds each, which set the
//! API's tail latency and a good part of its mean. While `vcon-host run` holds the broker, this
//! thread checkpoints instead, on a connection of its own, so a commit only appends to the WAL.
//!
//! A `PASSIVE` checkpoint never blocks a writer, but the WAL only starts over from its beginning
//! when a write finds every frame copied back, and under steady load a frame is always being
//! appended. So once the WAL is over [`WAL_LIMIT_BYTES`], the thread copies what is left while
//! holding the broker's connection, so no commit comes between: the next commit then starts the
//! WAL over. That short pause (the few frames appended since the copy before, and one fsync)
//! comes once per [`WAL_LIMIT_BYTES`] of WAL instead of once per 1000 pages.
//!
//! A round comes every [`INTERVAL`], or sooner once [`BYTES_PER_ROUND`] of frames were written,
//! so a fast writer cannot carry the WAL far past the limit between two rounds.
//!
//! Each round first fsyncs the segments of large documents written since the round before
//! ([`crate::documents`]), so they reach the disk no later than the WAL that names them, and
//! removes the segments given up that no row names any more.
//!
//! While a round works it sets the broker's [`BackgroundWork`], so the API's polling threads
//! sleep until it is over rather than hold the cores it and the clients need.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::background::BackgroundWork;
use crate::documents::Documents;
use crate::BrokerError;

/// How often the thread checkpoints at the least.
const INTERVAL: Duration = Duration::from_millis(100);

/// How often the thread looks at how many WAL frames this process has written.
const POLL: Duration = Duration::from_millis(10);

/// The thread checkpoints before [`INTERVAL`] is up once this many bytes of WAL frames were
/// written since the last round: a writer that commits one vCon every 60 µs appends over 100 MB
/// in 100 ms, which would carry the WAL far past [`WAL_LIMIT_BYTES`] between two rounds.
const BYTES_PER_ROUND: i64 = 32 << 20;

/// Past this many bytes of pages in the WAL, the checkpoint finishes while no commit can come
/// between, so the WAL starts over and stays bounded. In bytes, not pages, so the pause and the
/// file's size do not depend on the database's page size.
const WAL_LIMIT_BYTES: i64 = 64 << 20;

/// How many checkpoints beside the writers may follow the first of a round that found the WAL
/// over its limit ([`checkpoint`]): a bound for writers that append faster than the copy goes.
const CATCH_UP_ROUNDS: usize = 3;

/// A checkpoint beside the writers that took longer than this is followed by another before
/// the writers are held off ([`checkpoint`]): about the time of the fsyncs every checkpoint
/// ends with, below which another copy would not shorten the pause.
const CATCH_UP_ABOVE: Duration = Duration::from_millis(2);

/// The checkpoint thread of a broker opened for `run`; stops (after a last checkpoint) when
/// dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`, whose writers all go through `writer`, and
    /// fsyncing (and reclaiming) the segments they write to `documents`; `work` is set while a
    /// round works.
    pub(crate) fn start(
        path: &Path,
        writer: Arc<Mutex<Connection>>,
        documents: Arc<Documents>,
        work: BackgroundWork,
    ) -> Result<Self, BrokerError> {
        let sql = |source| BrokerError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = crate::sqlite::connect(path)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .map_err(sql)?;
        let frames_per_round = u64::try_from(BYTES_PER_ROUND / page_size.max(512)).unwrap_or(1);
        let wal_limit_pages = WAL_LIMIT_BYTES / page_size.max(512);
        let (stop, stopped) = mpsc::channel::<()>();
        let label = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("vcon-broker-checkpoint".into())
            .spawn(move || {
                let mut last_round = (Instant::now(), frames_written());
                loop {
                    // Every interval or every BYTES_PER_ROUND of frames, and once more when told
                    // to stop.
                    let stopping =
                        !matches!(stopped.recv_timeout(POLL), Err(RecvTimeoutError::Timeout));
                    documents.start_writeback();
                    documents.prepare_next_segment();
                    let due = last_round.0.elapsed() >= INTERVAL
                        || frames_written().saturating_sub(last_round.1) >= frames_per_round;
                    if !(due || stopping) {
                        continue;
                    }
                    last_round = (Instant::now(), frames_written());
                    let _running = work.enter();
                    if let Err(err) = documents.sync() {
                        tracing::warn!(
                            "fsyncing the broker documents in {}: {err}",
                            documents.dir().display()
                        );
                    }
                    documents.reclaim(|name| crate::sqlite::names_document_file(&conn, name));
                    match checkpoint(&conn, &writer, wal_limit_pages) {
                        Ok(round) => tracing::trace!("checkpointed the broker WAL: {round:?}"),
                        Err(err) => {
                            tracing::warn!("checkpointing the broker WAL of {label}: {err}");
                        }
                    }
                    if stopping {
                        break;
                    }
                }
            })
            .map_err(|source| BrokerError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What one round of [`checkpoint`] did: the thread logs it (at `trace`), and the tests see
/// from it that the catch-up copies happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Round {
    /// Checkpoints beside the writers: the first, and the catch-up ones after it.
    beside_writers: usize,
    /// Whether the round ended with the writers held off (the WAL was over its limit).
    held_writers: bool,
}

/// One round: a `PASSIVE` checkpoint beside the writers, then, if the WAL holds `limit` pages
/// or more, another with the writers held off.
///
/// Before the writers are held off, further checkpoints beside them copy what they appended
/// during the one before, as long as that took over [`CATCH_UP_ABOVE`] (at most
/// [`CATCH_UP_ROUNDS`] of them): each has less to copy than the last, so the pause copies only
/// the frames of the last and is mostly its fsyncs. With one, the pause copied everything
/// appended while the first copied 100 ms of WAL: one client posting 5 KB vCons appends the 64
/// MiB limit about every round, and spent 5.6–6.7 % of its time in requests over 1 ms.
fn checkpoint(
    conn: &Connection,
    writer: &Mutex<Connection>,
    limit: i64,
) -> Result<Round, rusqlite::Error> {
    let started = Instant::now();
    let mut round = Round {
        beside_writers: 1,
        held_writers: false,
    };
    if passive(conn)? < limit {
        return Ok(round);
    }
    let mut last = started.elapsed();
    for _ in 0..CATCH_UP_ROUNDS {
        if last <= CATCH_UP_ABOVE {
            break;
        }
        let started = Instant::now();
        passive(conn)?;
        round.beside_writers += 1;
        last = started.elapsed();
    }
    // Everything may be copied already, yet a commit since has appended to the WAL: only a
    // round with the writers held off leaves nothing uncopied for the next commit to find.
    let _writers_wait = writer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    passive(conn)?;
    round.held_writers = true;
    Ok(round)
}

/// WAL frames written by this process so far (every broker connection writes through
/// `sqlite-wal-vfs`, which counts them; another process's writes are caught by [`INTERVAL`]).
fn frames_written() -> u64 {
    sqlite_wal_vfs::wal_writes().frames
}

/// `PRAGMA wal_checkpoint(PASSIVE)`, answering how many pages the WAL holds.
fn passive(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker-like file with a WAL of `pages` uncopied 2 KiB pages, and the writer connection.
    fn file_with_wal(dir: &tempfile::TempDir, pages: usize) -> (Connection, Mutex<Connection>) {
        let path = dir.path().join("broker.sqlite");
        let writer = crate::sqlite::connect(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA page_size = 2048; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (x BLOB);",
            )
            .unwrap();
        let mut insert = writer.prepare("INSERT INTO t VALUES (?1)").unwrap();
        for _ in 0..pages {
            // A row of most of a page: about one page (and one WAL frame) each.
            insert.execute([vec![7u8; 1900]]).unwrap();
        }
        drop(insert);
        (crate::sqlite::connect(&path).unwrap(), Mutex::new(writer))
    }

    #[test]
    fn a_wal_under_its_limit_is_copied_once_beside_the_writers() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, writer) = file_with_wal(&dir, 100);
        let round = checkpoint(&conn, &writer, 1_000).unwrap();
        assert_eq!(
            round,
            Round {
                beside_writers: 1,
                held_writers: false
            }
        );
    }

    #[test]
    fn a_wal_over_its_limit_is_caught_up_beside_the_writers_before_they_are_held_off() {
        let dir = tempfile::tempdir().unwrap();
        // 20,000 frames (40 MB): the first copy, and its fsync, take well over CATCH_UP_ABOVE
        // on any disk, so at least one catch-up copy follows before the writers are held.
        let (conn, writer) = file_with_wal(&dir, 20_000);
        let round = checkpoint(&conn, &writer, 1_000).unwrap();
        assert!(round.held_writers, "{round:?}");
        assert!(
            (2..=1 + CATCH_UP_ROUNDS).contains(&round.beside_writers),
            "{round:?}"
        );
        // Nothing is left uncopied: the next commit starts the WAL over.
        let (log, copied): (i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!(log, copied, "every frame was copied back");
    }
}
