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
//! WAL over. That short pause (the few frames appended since the copy before, and their fsyncs)
//! comes once per [`WAL_LIMIT_BYTES`] of WAL instead of once per 1000 pages. The copies before it
//! fsync the database themselves, so the pause does not write back what they copied.
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

use std::fs::File;
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
        // Read-only is enough: an fsync through any descriptor of a file writes its pages back.
        let database = File::open(path).map_err(|source| BrokerError::Io {
            path: path.display().to_string(),
            source,
        })?;
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
                    match checkpoint(&conn, &writer, &database, wal_limit_pages) {
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
fn checkpoint(
    conn: &Connection,
    writer: &Mutex<Connection>,
    database: &File,
    limit: i64,
) -> Result<Round, RoundError> {
    let copied = copy_beside_writers(conn, database, limit)?;
    let mut round = Round {
        beside_writers: copied.copies,
        held_writers: false,
    };
    if copied.over_limit {
        // Everything may be copied already, yet a commit since has appended to the WAL: only a
        // round with the writers held off leaves nothing uncopied for the next commit to find.
        let writers_wait = writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = Instant::now();
        passive(conn)?;
        drop(writers_wait);
        round.held_writers = true;
        // What each commit waited at most (`VCON_LOG=vcon_broker=debug`): the pause a client
        // sees once per WAL limit.
        tracing::debug!(
            "the broker's checkpoint held the writers off for {:?} to start the WAL over",
            held.elapsed()
        );
    }
    Ok(round)
}

/// What [`copy_beside_writers`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Copied {
    /// Checkpoints run: the first, and the catch-up ones after it.
    copies: usize,
    /// Whether the WAL held `limit` pages or more, so the writers must now be held off.
    over_limit: bool,
}

/// The part of a round beside the writers: a `PASSIVE` checkpoint, and if the WAL is over
/// `limit`, what prepares the pause with the writers held off, so it stays short.
///
/// Further checkpoints copy what the writers appended during the one before, as long as that
/// took over [`CATCH_UP_ABOVE`] (at most [`CATCH_UP_ROUNDS`] of them): each has less to copy
/// than the last, so the pause copies only the frames of the last. With one, the pause copied
/// everything appended while the first copied 100 ms of WAL: one client posting 5 KB vCons
/// appends the 64 MiB limit about every round, and spent 5.6–6.7 % of its time in requests
/// over 1 ms.
///
/// Each of these copies is followed by an fsync of the database. SQLite fsyncs the database
/// only in a checkpoint that reaches the end of the WAL, which under load is only the one with
/// the writers held off: that fsync then wrote back every page the copies beside the writers
/// had left in the page cache since the pause before, tens of megabytes, and held the writers
/// off 30–140 ms on a disk that takes 520 MB/s; with these fsyncs, 5–10 ms (docs/benchmarks.md).
fn copy_beside_writers(
    conn: &Connection,
    database: &File,
    limit: i64,
) -> Result<Copied, RoundError> {
    let started = Instant::now();
    if passive(conn)? < limit {
        return Ok(Copied {
            copies: 1,
            over_limit: false,
        });
    }
    database.sync_data()?;
    let mut copied = Copied {
        copies: 1,
        over_limit: true,
    };
    let mut last = started.elapsed();
    for _ in 0..CATCH_UP_ROUNDS {
        if last <= CATCH_UP_ABOVE {
            break;
        }
        let started = Instant::now();
        passive(conn)?;
        database.sync_data()?;
        copied.copies += 1;
        last = started.elapsed();
    }
    Ok(copied)
}

/// Why a round of [`checkpoint`] stopped short. The thread logs it, and the next round starts
/// over: nothing is lost, the WAL only stays longer.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("{0}")]
    Checkpoint(#[from] rusqlite::Error),
    #[error("fsyncing the database file after copying the WAL into it: {0}")]
    SyncDatabase(#[from] std::io::Error),
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
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
        // The checkpoint thread's connection, set up as `Checkpointer::start` sets it up.
        let conn = crate::sqlite::connect(&path).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        (conn, Mutex::new(writer))
    }

    /// The database file of [`file_with_wal`], as the checkpoint thread opens it.
    fn database_of(dir: &tempfile::TempDir) -> File {
        File::open(dir.path().join("broker.sqlite")).unwrap()
    }

    /// How many of `file`'s pages in the page cache are dirty (changed and not yet written
    /// back), from the kernel's `cachestat` (Linux 6.5); `None` where the kernel lacks it.
    #[allow(unsafe_code)]
    fn dirty_pages(file: &File) -> Option<u64> {
        use std::os::fd::AsRawFd;
        /// `struct cachestat_range` of the kernel's uapi: the whole file.
        #[repr(C)]
        struct Range {
            off: u64,
            len: u64,
        }
        /// `struct cachestat` of the kernel's uapi.
        #[repr(C)]
        #[derive(Default)]
        struct Stat {
            nr_cache: u64,
            nr_dirty: u64,
            nr_writeback: u64,
            nr_evicted: u64,
            nr_recently_evicted: u64,
        }
        /// The same number on every architecture but alpha (libc does not name it yet).
        const SYS_CACHESTAT: libc::c_long = 451;
        let range = Range { off: 0, len: 0 };
        let mut stat = Stat::default();
        // SAFETY: the kernel reads `range` and writes `stat`, both alive for the call and laid
        // out as its uapi structs; the descriptor is open for the call.
        let answer = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                file.as_raw_fd(),
                &range as *const Range,
                &mut stat as *mut Stat,
                0u32,
            )
        };
        (answer == 0).then_some(stat.nr_dirty)
    }

    #[test]
    fn the_copies_beside_the_writers_leave_nothing_for_the_pause_to_write_back() {
        let dir = tempfile::tempdir().unwrap();
        // 20,000 frames (40 MB), more than the kernel writes back on its own within the test.
        let (conn, writer) = file_with_wal(&dir, 20_000);
        let database = database_of(&dir);
        assert!(
            dirty_pages(&database).is_some(),
            "this test needs Linux 6.5 or later (the cachestat system call)"
        );
        /// tmpfs keeps no page dirty: nothing there is ever written back.
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        assert_ne!(
            rustix::fs::statfs(dir.path()).unwrap().f_type as i64,
            TMPFS_MAGIC,
            "this test needs a temporary directory on a disk-backed file system, not tmpfs \
             (set TMPDIR)"
        );
        // A writer commits all along, as under load, so no copy reaches the end of the WAL,
        // which is when SQLite would fsync the database itself.
        let (stop, commits) = (AtomicBool::new(false), AtomicUsize::new(0));
        let copied = std::thread::scope(|scope| {
            scope.spawn(|| {
                let row = vec![1u8; 100];
                while !stop.load(Ordering::Relaxed) {
                    let writer = writer.lock().unwrap();
                    writer.execute("INSERT INTO t VALUES (?1)", [&row]).unwrap();
                    commits.fetch_add(1, Ordering::Relaxed);
                }
            });
            let started = Instant::now();
            while commits.load(Ordering::Relaxed) < 10
                && started.elapsed() < Duration::from_secs(10)
            {
                std::thread::yield_now();
            }
            let copied = (commits.load(Ordering::Relaxed) >= 10)
                .then(|| copy_beside_writers(&conn, &database, 1_000));
            stop.store(true, Ordering::Relaxed);
            copied
        })
        .expect("the writer never committed")
        .unwrap();
        assert!(copied.over_limit, "{copied:?}");
        assert_eq!(
            dirty_pages(&database),
            Some(0),
            "the database's copied pages are written back before the writers are held off"
        );
    }

    #[test]
    fn a_wal_under_its_limit_is_copied_once_beside_the_writers() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, writer) = file_with_wal(&dir, 100);
        let round = checkpoint(&conn, &writer, &database_of(&dir), 1_000).unwrap();
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
        let round = checkpoint(&conn, &writer, &database_of(&dir), 1_000).unwrap();
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

    #[test]
    fn a_database_that_cannot_be_fsynced_ends_the_round_before_the_writers_are_held_off() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, writer) = file_with_wal(&dir, 2_000);
        // A pipe: `fsync` refuses it (EINVAL), as a failing disk would refuse the file.
        let (pipe, _other_end) = std::io::pipe().unwrap();
        let unsyncable = File::from(std::os::fd::OwnedFd::from(pipe));
        let err = checkpoint(&conn, &writer, &unsyncable, 1_000).unwrap_err();
        assert!(matches!(err, RoundError::SyncDatabase(_)), "{err:?}");
        assert!(
            err.to_string().contains("fsyncing the database file"),
            "{err}"
        );
        // Nothing is lost: the next round, with the file, finishes the job.
        let round = checkpoint(&conn, &writer, &database_of(&dir), 1_000).unwrap();
        assert!(round.held_writers, "{round:?}");
        let rows: i64 = writer
            .lock()
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 2_000);
    }
}
