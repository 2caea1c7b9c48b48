//! Large hot-store documents, appended to segment files beside the embedded broker's database.
//!
//! Why apart from the database: SQLite writes a document twice, into the WAL at commit and into
//! the database when the WAL is checkpointed, and the checkpoint fsyncs both, at times while the
//! writers wait. For a 270 KB vCon (the reference's `cat1`) that is 83 WAL pages a commit, and
//! on the development machine's disk the disk's bandwidth, not the CPU, set how many large
//! `POST /vcon`s a second the host took (docs/benchmarks.md). A document of
//! [`LARGE_DOCUMENT_BYTES`] or more is instead written once, appended to a segment file, and its
//! row keeps the segment's name and the document's offset, length and CRC-32.
//!
//! Why segments and not a file per document (the layout before): each file cost a create and,
//! at the checkpoint thread's next round, an `fdatasync` of its own, each about three
//! synchronous writes to the disk (data, inode, cache flush). A segment is created once per
//! [`SEGMENT_BYTES`] and fsynced once a round, however many documents went into it: with one
//! client posting cat1s, 609–644 µs of host CPU per request against 746–819 µs with a file per
//! document, in alternated runs of `cargo xtask bench api` (docs/benchmarks.md).
//!
//! A segment is only appended to, never written over: a reader that found a row reads the bytes
//! that row recorded, or, if the segment was removed since (every document in it replaced or
//! deleted), finds it missing and reads the row again. Each broker handle appends to a segment
//! of its own, created under a fresh random name, and holds a shared `flock` on it while it may
//! still add to it, which a document written but not yet committed extends
//! ([`WrittenDocument`]). A segment is removed once it is no handle's (an exclusive `flock`
//! succeeds) and no row names it: checked when a row that named it goes ([`Documents::remove`],
//! then [`Documents::reclaim`]), and for every segment at the start of `run`
//! ([`Documents::sweep`]), which finds those of a process that died before its commit.
//!
//! Space is given back a segment at a time: a replaced or deleted document's bytes stay until
//! every other document in its segment is gone too. Hot copies expire (the chain's time to
//! live), and they expire in the order they were written, so segments empty in order; one vCon
//! kept for good pins its segment's [`SEGMENT_BYTES`]. Compacting such a segment is not built.
//!
//! Once a document is on the disk its pages are dropped from the page cache, so the next
//! document is written into pages the kernel just had back rather than ones it never handed out
//! before ([`Documents::sync`] has the figures).
//!
//! Durability matches the WAL's at `synchronous=NORMAL`: a document is in the kernel's cache
//! when its commit is, so it survives a crash of the process. Against a power loss, while
//! `vcon-host run` holds the broker its checkpoint thread fsyncs the segments written since its
//! last round before it fsyncs the WAL (every 100 ms), and a handle without that thread (the
//! `ingest` command, the CLI) fsyncs each document before its commit. A row whose document is
//! missing, or not the length and CRC-32 recorded, reads as absent, with an error in the log
//! saying so.
//!
//! Rows written by an earlier version name a file of their own (`<32 hex digits>.json`, no
//! offset): they read as before, and the file is removed with its row.

use std::collections::HashSet;
use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rustix::fs::{FlockOperation, OFlags};

/// Documents of this many bytes or more are kept apart. Below it the copy and the fsync cost
/// more than the pages they spare the WAL (a 5 KB vCon is two pages).
pub(crate) const LARGE_DOCUMENT_BYTES: usize = 64 * 1024;

/// A segment takes documents until it holds this many bytes; a document larger than that has
/// one to itself. Large enough that creating one (hundreds of µs on an ext4 with inodes freed
/// recently) comes once per 240 cat1s; small enough that one long-lived vCon pins little.
const SEGMENT_BYTES: u64 = 64 << 20;

/// Each document starts on a page of its own, so dropping one document's pages from the cache
/// never takes part of the next one's, and no write starts by reading back a page shared with
/// the document before. At most a page lost a document: under 6 % at [`LARGE_DOCUMENT_BYTES`].
const DOCUMENT_ALIGN: u64 = 4096;

/// A file of an earlier version's layout younger than this is never swept: another process
/// (an older `vcon-host ingest`) may have written it and not committed yet.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(600);

/// A segment younger than this is never swept: another process may have created it and not yet
/// taken its lock.
const SEGMENT_SWEEP_MIN_AGE: Duration = Duration::from_secs(60);

/// Why [`Documents::read`] found no document.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// No such file: every document in it replaced or deleted since the row was read, or lost.
    Missing,
    /// The file is there but does not hold what the row recorded, or cannot be read.
    Lost(String),
}

/// Where a large document was written: what its row records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocumentFile {
    /// The segment's name in the documents directory ([`is_segment_name`]), or an earlier
    /// version's file of its own ([`is_legacy_name`]).
    pub(crate) name: String,
    /// Where in the segment the document starts; `None` for an earlier version's file, which
    /// holds the document alone.
    pub(crate) offset: Option<i64>,
    /// Its length, so a segment cut short (a power loss before it reached the disk) is caught.
    pub(crate) len: i64,
    /// Its CRC-32, so bytes a power loss kept from the disk (blocks never written read back
    /// as zeros) are caught too. Hardware CRC: 0.5 % of the API thread's samples in a `perf
    /// record` of one-client cat1 `POST`s (docs/benchmarks.md).
    pub(crate) crc32: i64,
}

/// A document written and not yet recorded by a commit. It keeps its segment open, and so
/// locked against removal, until it is dropped: after the commit, or once the ingest failed.
/// Without that, a segment that rolled over meanwhile would be no handle's and, with no row
/// naming it yet, removed under the commit about to name it.
#[derive(Debug)]
pub(crate) struct WrittenDocument {
    /// What the row records.
    pub(crate) file: DocumentFile,
    _segment: Arc<Segment>,
}

/// A large document written before its vCon is ingested ([`crate::Broker::stage_document`]),
/// so the write can overlap the document's validation: for `POST /vcon` of a 270 KB vCon with
/// one client, the write and its CRC run on the other core while the API thread validates (the
/// p50 fell from 540–661 µs to 436–477 µs in `cargo xtask bench api`, docs/benchmarks.md).
/// Given up when dropped unless an ingest recorded it, so a document that turns out invalid
/// leaves nothing a row names.
#[derive(Debug)]
pub struct StagedDocument {
    written: WrittenDocument,
    documents: Arc<Documents>,
    /// Taken by the ingest that records it (only one may), and given back if that ingest
    /// fails.
    taken: AtomicBool,
}

impl StagedDocument {
    pub(crate) fn new(written: WrittenDocument, documents: Arc<Documents>) -> Self {
        Self {
            written,
            documents,
            taken: AtomicBool::new(false),
        }
    }

    /// The document, for an ingest into `documents` of a document of `len` bytes, if it is one
    /// of theirs and no other ingest took it. [`Self::give_back`] if the ingest fails.
    pub(crate) fn take(&self, documents: &Arc<Documents>, len: usize) -> Option<&DocumentFile> {
        let file = &self.written.file;
        let fits =
            Arc::ptr_eq(&self.documents, documents) && i64::try_from(len).ok() == Some(file.len);
        let taken = fits
            && self
                .taken
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        taken.then_some(file)
    }

    /// Undoes [`Self::take`]: the ingest that took the document did not commit.
    pub(crate) fn give_back(&self) {
        self.taken.store(false, Ordering::Release);
    }
}

impl PartialEq for StagedDocument {
    fn eq(&self, other: &Self) -> bool {
        self.written.file == other.written.file
    }
}

impl Eq for StagedDocument {}

impl Drop for StagedDocument {
    fn drop(&mut self) {
        if !*self.taken.get_mut() {
            self.documents.remove([self.written.file.name.clone()]);
        }
    }
}

/// A segment this handle created, open for appending, with a shared `flock` held for as long
/// as it is open: the sign to every process that it may still gain documents.
#[derive(Debug)]
struct Segment {
    name: String,
    file: File,
}

impl Segment {
    /// A new, empty, locked segment in `dir` (created if need be).
    fn create(dir: &Path) -> std::io::Result<Self> {
        let name = format!("{:032x}.seg", rand::random::<u128>());
        let path = dir.join(&name);
        let file = match create(&path) {
            Err(err) if err.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                create(&path)
            }
            other => other,
        }?;
        rustix::fs::flock(&file, FlockOperation::LockShared)?;
        Ok(Self { name, file })
    }
}

/// The segment a handle appends to, and where its next document goes.
#[derive(Debug)]
struct Appending {
    segment: Arc<Segment>,
    end: u64,
}

/// Bytes of a segment written since the last [`Documents::sync`].
#[derive(Debug)]
struct Unsynced {
    segment: Arc<Segment>,
    start: u64,
    end: u64,
    /// Where [`Documents::start_writeback`] got to.
    written_back: u64,
}

/// What [`Documents::remove_if_unused`] found.
enum Unused {
    /// Removed.
    Removed,
    /// A handle may still append to it (its lock is held): look again later.
    Appending,
    /// A row still names it.
    Named,
    /// Already gone.
    Gone,
}

/// The documents directory of one broker file, for one handle.
#[derive(Debug)]
pub(crate) struct Documents {
    dir: PathBuf,
    /// Fsync each document before its commit (no checkpoint thread to do it).
    sync_each: bool,
    /// The segment new documents go to; `None` until the first, or once closed.
    appending: Mutex<Option<Appending>>,
    /// The segment to roll over to, created ahead by [`Self::prepare_next_segment`].
    next: Mutex<Option<Segment>>,
    /// Written and not yet fsynced, for the checkpoint thread.
    unsynced: Mutex<Vec<Unsynced>>,
    /// A segment was created since the last sync: its name is not on the disk yet.
    dir_unsynced: AtomicBool,
    /// Segments a row stopped naming: removed by [`Self::reclaim`] once unused.
    given_up: Mutex<HashSet<String>>,
}

impl Documents {
    /// The documents of the broker at `broker` live in `<broker>-documents/`, named like
    /// SQLite's own `-wal` and `-shm` files. Created on the first large document.
    pub(crate) fn new(broker: &Path, sync_each: bool) -> Self {
        let mut dir = broker.as_os_str().to_owned();
        dir.push("-documents");
        Self {
            dir: PathBuf::from(dir),
            sync_each,
            appending: Mutex::new(None),
            next: Mutex::new(None),
            unsynced: Mutex::new(Vec::new()),
            dir_unsynced: AtomicBool::new(false),
            given_up: Mutex::new(HashSet::new()),
        }
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn unsynced(&self) -> MutexGuard<'_, Vec<Unsynced>> {
        lock(&self.unsynced)
    }

    fn given_up(&self) -> MutexGuard<'_, HashSet<String>> {
        lock(&self.given_up)
    }

    /// Room for `len` bytes: the segment and the offset. A new segment once the current one
    /// is full (or there is none). Only the reservation holds the lock; writers copy their
    /// documents side by side.
    fn reserve(&self, len: u64) -> std::io::Result<(Arc<Segment>, u64)> {
        let mut appending = lock(&self.appending);
        let mut room = match appending.take() {
            Some(room) if room.end == 0 || room.end.saturating_add(len) <= SEGMENT_BYTES => room,
            full => match self.new_segment() {
                Ok(segment) => {
                    if let Some(full) = full {
                        // Removed once every document in it is gone.
                        self.given_up().insert(full.segment.name.clone());
                    }
                    Appending {
                        segment: Arc::new(segment),
                        end: 0,
                    }
                }
                Err(err) => {
                    *appending = full;
                    return Err(err);
                }
            },
        };
        let offset = room.end;
        room.end = offset
            .saturating_add(len)
            .checked_next_multiple_of(DOCUMENT_ALIGN)
            .unwrap_or(u64::MAX);
        let segment = Arc::clone(&room.segment);
        *appending = Some(room);
        Ok((segment, offset))
    }

    /// A new segment to append to, its name on the disk no later than the first document in
    /// it: fsynced now for a handle that fsyncs each document, else by the next [`Self::sync`].
    ///
    /// A segment the checkpoint thread fsyncs has its blocks allocated up front: appending to a
    /// file while it is being written back otherwise has each write wait for the block
    /// allocation of the writeback on the same file (the broker write of a cat1, p50 and mean,
    /// 113 and 245 µs against 91–95 and 130–205 µs with the blocks allocated, `cargo xtask bench
    /// api -- broker-only`). A handle that fsyncs each document before its commit (`ingest`)
    /// writes nothing back meanwhile, and may hold one vCon for good: its segments grow as they
    /// are written, and do not take the whole size on the disk.
    fn new_segment(&self) -> std::io::Result<Segment> {
        if let Some(ready) = lock(&self.next).take() {
            return Ok(ready);
        }
        self.create_segment()
    }

    /// Creates the segment the current one rolls over to, once the current one is half full,
    /// for a handle whose checkpoint thread calls this (between its rounds). Creating a segment
    /// and allocating its 64 MiB took 3–6 ms in `perf trace` of one client posting cat1s, once
    /// per 240 documents: on the write, and so on the request, that rolled over. A handle that
    /// never wrote a large document creates none. A failure is left to the write that needs
    /// the segment, which tries again and reports it.
    pub(crate) fn prepare_next_segment(&self) {
        if self.sync_each || lock(&self.next).is_some() {
            return;
        }
        let half_full = lock(&self.appending)
            .as_ref()
            .is_some_and(|room| room.end >= SEGMENT_BYTES / 2);
        if !half_full {
            return;
        }
        match self.create_segment() {
            Ok(segment) => {
                if let Some(unused) = lock(&self.next).replace(segment) {
                    // Only the checkpoint thread prepares; should two ever race, the spare goes.
                    self.given_up().insert(unused.name.clone());
                }
            }
            Err(err) => tracing::debug!(
                "creating the next broker document segment in {} ahead: {err} (the write that \
                 needs it tries again)",
                self.dir.display()
            ),
        }
    }

    /// A new segment, its blocks allocated unless documents are fsynced one by one (see
    /// [`Self::new_segment`]).
    fn create_segment(&self) -> std::io::Result<Segment> {
        let segment = Segment::create(&self.dir)?;
        if self.sync_each {
            File::open(&self.dir)?.sync_all()?;
        } else {
            self.dir_unsynced.store(true, Ordering::Release);
            // Advice, in effect: a filesystem without `fallocate` appends as the other handles do.
            let _ = rustix::fs::fallocate(
                &segment.file,
                rustix::fs::FallocateFlags::empty(),
                0,
                SEGMENT_BYTES,
            );
        }
        Ok(segment)
    }

    /// Appends `json` to this handle's segment, before the commit that records it.
    pub(crate) fn write(&self, json: &[u8]) -> std::io::Result<WrittenDocument> {
        let len = json.len() as u64;
        let (segment, offset) = self.reserve(len)?;
        let written = segment.file.write_all_at(json, offset).and_then(|()| {
            if self.sync_each {
                sync_and_drop(&segment.file, offset, len)
            } else {
                Ok(())
            }
        });
        if let Err(err) = written {
            // The bytes reserved are never named; the segment goes with its other documents.
            self.remove([segment.name.clone()]);
            return Err(err);
        }
        if !self.sync_each {
            self.unsynced_add(&segment, offset, offset + len);
        }
        Ok(WrittenDocument {
            file: DocumentFile {
                name: segment.name.clone(),
                offset: i64::try_from(offset).ok(),
                len: i64::try_from(len).unwrap_or(i64::MAX),
                crc32: i64::from(crc32fast::hash(json)),
            },
            _segment: segment,
        })
    }

    /// Records `start..end` of `segment` for the next [`Self::sync`], in the entry of its
    /// segment: a round fsyncs each segment once.
    fn unsynced_add(&self, segment: &Arc<Segment>, start: u64, end: u64) {
        let mut unsynced = self.unsynced();
        match unsynced
            .iter_mut()
            .find(|u| Arc::ptr_eq(&u.segment, segment))
        {
            Some(entry) => {
                entry.start = entry.start.min(start);
                entry.end = entry.end.max(end);
            }
            None => unsynced.push(Unsynced {
                segment: Arc::clone(segment),
                start,
                end,
                written_back: start,
            }),
        }
    }

    /// Starts writing back what was written since the last call, without waiting for it, so the
    /// next [`Self::sync`] finds it (mostly) on the disk. The checkpoint thread calls it every
    /// 10 ms: submitting a round's worth of pages at once (20–50 MB of cat1s in 100 ms) kept
    /// a core busy for milliseconds, and on two cores the API thread waited that out (9–15 %
    /// of one-client cat1 posts over 1 ms, against 3–4 % with the pages submitted every 10 ms
    /// and the blocks allocated up front, docs/benchmarks.md). [`drop_cached`] starts the
    /// writeback as `sync_file_range` would, without `unsafe`; the pages stay cached until
    /// they are clean and the round drops them.
    pub(crate) fn start_writeback(&self) {
        let ranges: Vec<(Arc<Segment>, u64, u64)> = self
            .unsynced()
            .iter_mut()
            .filter(|u| u.end > u.written_back)
            .map(|u| {
                let from = std::mem::replace(&mut u.written_back, u.end);
                (Arc::clone(&u.segment), from, u.end)
            })
            .collect();
        for (segment, from, to) in ranges {
            drop_cached(&segment.file, from, to - from);
        }
    }

    /// Reads a document its row names. A missing file may only mean another handle removed it
    /// since the row was read, every document in it gone ([`ReadError::Missing`]: read the row
    /// again); a file that does not hold what the row recorded, or a name this broker never
    /// makes, means the copy is lost.
    pub(crate) fn read(&self, file: &DocumentFile) -> Result<Vec<u8>, ReadError> {
        let lost = |why: String| Err(ReadError::Lost(why));
        let known = match file.offset {
            Some(_) => is_segment_name(&file.name),
            None => is_legacy_name(&file.name),
        };
        if !known {
            return lost(format!(
                "its row names the document file {:?}, which this broker never writes",
                file.name
            ));
        }
        let (Ok(offset), Ok(len)) = (
            u64::try_from(file.offset.unwrap_or(0)),
            usize::try_from(file.len),
        ) else {
            return lost(format!(
                "its row names {} bytes at offset {:?} of {}, which cannot be",
                file.len, file.offset, file.name
            ));
        };
        let path = self.dir.join(&file.name);
        let opened = match File::open(&path) {
            Ok(opened) => opened,
            Err(err) if err.kind() == ErrorKind::NotFound => return Err(ReadError::Missing),
            Err(err) => return lost(format!("opening {}: {err}", path.display())),
        };
        let mut bytes = vec![0; len];
        match opened.read_exact_at(&mut bytes, offset) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => {
                return lost(format!(
                    "{} ends before the {len} bytes at offset {offset} its row names (cut short, \
                     most likely by a power loss before it reached the disk)",
                    path.display()
                ))
            }
            Err(err) => return lost(format!("reading {}: {err}", path.display())),
        }
        // A file of an earlier version's holds its document alone.
        let longer = file.offset.is_none()
            && opened
                .metadata()
                .is_ok_and(|meta| meta.len() != bytes.len() as u64);
        if longer || i64::from(crc32fast::hash(&bytes)) != file.crc32 {
            return lost(format!(
                "{} does not hold the document its row was written with (its checksum differs: \
                 most likely a power loss before it reached the disk)",
                path.display()
            ));
        }
        Ok(bytes)
    }

    /// Logs why the hot copy of `uuid` cannot be read, with what to do about it: a reader
    /// treats it as absent, like an expired hot copy.
    pub(crate) fn report_lost(&self, uuid: &str, why: &str) {
        tracing::error!(
            "the hot copy of vCon {uuid} in {} is lost: {why}; post the vCon again, or read it \
             from a chain storage",
            self.dir.display()
        );
    }

    /// Gives up documents no row names any more (replaced, deleted, expired, or written by a
    /// commit that failed), by the file each was in: a segment is removed by the next
    /// [`Self::reclaim`] if nothing else in it is named; an earlier version's file at once.
    /// Best effort: a file left behind is swept at the next start.
    pub(crate) fn remove(&self, names: impl IntoIterator<Item = String>) {
        for name in names {
            if is_segment_name(&name) {
                self.given_up().insert(name);
            } else if is_legacy_name(&name) {
                let path = self.dir.join(&name);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(err) if err.kind() == ErrorKind::NotFound => {}
                    Err(err) => tracing::warn!(
                        "removing the broker document {}: {err} (it is swept at the next start)",
                        path.display()
                    ),
                }
            }
        }
    }

    /// Whether [`Self::reclaim`] has segments to look at.
    pub(crate) fn has_given_up(&self) -> bool {
        !self.given_up().is_empty()
    }

    /// Removes the segments given up ([`Self::remove`]) that no row names (`is_named` asks the
    /// database) and no handle may still append to. One still appended to is looked at again
    /// the next time; one a row still names comes back when that row goes. Answers how many
    /// were removed.
    pub(crate) fn reclaim<E: Display>(
        &self,
        mut is_named: impl FnMut(&str) -> Result<bool, E>,
    ) -> usize {
        let candidates = std::mem::take(&mut *self.given_up());
        if candidates.is_empty() {
            return 0;
        }
        let appending = lock(&self.appending)
            .as_ref()
            .map(|room| room.segment.name.clone());
        let mut later = Vec::new();
        let mut removed = 0;
        for name in candidates {
            if appending.as_ref() == Some(&name) {
                later.push(name);
                continue;
            }
            match self.remove_if_unused(&name, &mut is_named) {
                Ok(Unused::Removed) => removed += 1,
                Ok(Unused::Appending) => later.push(name),
                Ok(Unused::Named | Unused::Gone) => {}
                Err(err) => tracing::warn!(
                    "removing the broker document segment {}: {err} (it is swept at the next \
                     start)",
                    self.dir.join(&name).display()
                ),
            }
        }
        self.given_up().extend(later);
        removed
    }

    /// Removes segment `name` if no handle holds it (its exclusive lock is free) and no row
    /// names it. A handle only ever appends to segments it created, so once the lock is free
    /// no document can be added, and no row can come to name it.
    fn remove_if_unused<E: Display>(
        &self,
        name: &str,
        is_named: &mut impl FnMut(&str) -> Result<bool, E>,
    ) -> Result<Unused, String> {
        let path = self.dir.join(name);
        let segment = match rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(segment) => segment,
            Err(rustix::io::Errno::NOENT) => return Ok(Unused::Gone),
            Err(err) => return Err(format!("opening it: {err}")),
        };
        match rustix::fs::flock(&segment, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(Unused::Appending),
            Err(err) => return Err(format!("locking it: {err}")),
        }
        if is_named(name).map_err(|err| format!("asking the database: {err}"))? {
            return Ok(Unused::Named);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(Unused::Removed),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(Unused::Gone),
            Err(err) => Err(err.to_string()),
        }
        // `segment`, and the lock, go once the name is gone.
    }

    /// Stops appending to the current segment, so it can be removed once its documents are
    /// gone too: for a handle that is closing.
    pub(crate) fn close(&self) {
        if let Some(room) = lock(&self.appending).take() {
            self.given_up().insert(room.segment.name.clone());
        }
        // Never written to: it goes at the next reclaim, its lock released here.
        if let Some(unused) = lock(&self.next).take() {
            self.given_up().insert(unused.name.clone());
        }
    }

    /// Fsyncs the segments written since the last call (each once), then, if a segment was
    /// created, the directory that names it. The checkpoint thread calls it before each
    /// checkpoint, which fsyncs the WAL. A round that fails leaves its segments to the next.
    ///
    /// The bytes synced are then dropped from the page cache (`POSIX_FADV_DONTNEED`), as
    /// PostgreSQL does with a WAL segment it is done with: a document is written once and read
    /// at most once more (by the chain's worker, or a `GET`), and the pages it frees are the
    /// ones the kernel hands the next document's write. Left cached, every write takes pages
    /// the page cache never had, and on the development machine (a virtual machine) those cost
    /// several times a recycled page: the broker write of a cat1 took a mean of 628–1,111 µs
    /// with them and 247–301 µs with the pages dropped (`cargo xtask bench api --
    /// broker-only`, docs/benchmarks.md). A reader that comes later reads from the disk; it
    /// does so without holding the broker's connection (`SqliteBroker::get_vcons`).
    ///
    /// Each segment on its own, not one `syncfs` of the filesystem: that would also write back
    /// whatever else is dirty on the filesystem (a database or a storage beside the broker)
    /// every 100 ms. With one segment a round, it would not save a flush either.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        let pending = std::mem::take(&mut *self.unsynced());
        let dir_unsynced = self.dir_unsynced.swap(false, Ordering::AcqRel);
        if pending.is_empty() && !dir_unsynced {
            return Ok(());
        }
        let synced = pending
            .iter()
            .try_for_each(|u| sync_and_drop(&u.segment.file, u.start, u.end - u.start))
            .and_then(|()| {
                if dir_unsynced {
                    File::open(&self.dir)?.sync_all()
                } else {
                    Ok(())
                }
            });
        if synced.is_err() {
            for u in pending {
                self.unsynced_add(&u.segment, u.start, u.end);
            }
            if dir_unsynced {
                self.dir_unsynced.store(true, Ordering::Release);
            }
        }
        synced
    }

    /// Removes what a process that died left: segments no handle holds and no row names (its
    /// documents written, never committed), an earlier version's files no row names and its
    /// spares. Files younger than [`SEGMENT_SWEEP_MIN_AGE`] (segments) or [`SWEEP_MIN_AGE`]
    /// (an earlier version's) are left: another process may be about to lock or commit them.
    /// Answers how many files were removed.
    pub(crate) fn sweep<E: Display>(
        &self,
        mut is_named: impl FnMut(&str) -> Result<bool, E>,
    ) -> Result<usize, String> {
        let entries = match std::fs::read_dir(&self.dir) {
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(0),
            other => other.map_err(|err| err.to_string())?,
        };
        let now = SystemTime::now();
        let older_than = |entry: &std::fs::DirEntry, age: Duration| {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| now.duration_since(at).ok())
                .is_some_and(|it| it >= age)
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|err| err.to_string())?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if is_segment_name(&name) {
                if older_than(&entry, SEGMENT_SWEEP_MIN_AGE)
                    && matches!(
                        self.remove_if_unused(&name, &mut is_named)?,
                        Unused::Removed
                    )
                {
                    removed += 1;
                }
                continue;
            }
            // An earlier version kept files given up to write the next document over.
            let spare = name.strip_prefix("spare-").is_some_and(is_legacy_name);
            let orphan = is_legacy_name(&name)
                && older_than(&entry, SWEEP_MIN_AGE)
                && !is_named(&name).map_err(|err| err.to_string())?;
            if spare || orphan {
                std::fs::remove_file(entry.path()).map_err(|err| err.to_string())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Fsyncs `file`, then drops `len` bytes from `offset` from the page cache ([`Documents::sync`]
/// says why). Dropping is advice: a filesystem that ignores it (tmpfs) keeps them, which is no
/// error.
fn sync_and_drop(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    file.sync_data()?;
    drop_cached(file, offset, len);
    Ok(())
}

/// `POSIX_FADV_DONTNEED` of `len` bytes from `offset`: drops the clean pages from the page
/// cache and starts the writeback of the dirty ones. Advice, so a failure is no error.
fn drop_cached(file: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::DontNeed,
    );
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Whether `stem` is 32 lowercase hex digits, as every name the broker makes has.
fn is_random_stem(stem: &str) -> bool {
    stem.len() == 32
        && stem
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `name` is one [`Segment::create`] makes (32 lowercase hex digits and `.seg`):
/// checked before a name read from the database is joined to the directory.
pub(crate) fn is_segment_name(name: &str) -> bool {
    name.strip_suffix(".seg").is_some_and(is_random_stem)
}

/// Whether `name` is one an earlier version wrote a document alone to (32 lowercase hex digits
/// and `.json`).
pub(crate) fn is_legacy_name(name: &str) -> bool {
    name.strip_suffix(".json").is_some_and(is_random_stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents(scratch: &tempfile::TempDir, sync_each: bool) -> Documents {
        Documents::new(&scratch.path().join("broker.sqlite"), sync_each)
    }

    fn never_named(_: &str) -> Result<bool, std::convert::Infallible> {
        Ok(false)
    }

    #[test]
    fn a_sync_that_fails_is_tried_again_at_the_next_round() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = documents(&scratch, false);
        // Nothing written: nothing to sync, even with no directory yet.
        documents.sync().unwrap();
        let _written = documents.write(b"{}").unwrap();
        std::fs::remove_dir_all(documents.dir()).unwrap();
        assert!(documents.sync().is_err(), "the directory is gone");
        assert_eq!(
            documents.unsynced().len(),
            1,
            "the failed round leaves its segment to the next"
        );
        std::fs::create_dir(documents.dir()).unwrap();
        documents.sync().unwrap();
        assert!(documents.unsynced().is_empty());
    }

    #[test]
    fn documents_share_a_segment_each_from_a_page_of_its_own_and_sync_once_a_round() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = documents(&scratch, false);
        let first = documents.write(&[b'a'; 5000]).unwrap();
        let second = documents.write(&[b'b'; 70_000]).unwrap();
        assert_eq!(first.file.name, second.file.name, "one segment");
        assert_eq!(first.file.offset, Some(0));
        assert_eq!(
            second.file.offset,
            Some(8192),
            "the next page after the first"
        );
        let unsynced = documents.unsynced();
        assert_eq!(unsynced.len(), 1, "one entry for the segment");
        assert_eq!((unsynced[0].start, unsynced[0].end), (0, 8192 + 70_000));
        drop(unsynced);
        // Writeback started early still leaves the range to the round's fsync.
        documents.start_writeback();
        let third = documents.write(&[b'c'; 100]).unwrap();
        let unsynced = documents.unsynced();
        assert_eq!(
            (unsynced[0].start, unsynced[0].written_back, unsynced[0].end),
            (0, 8192 + 70_000, 81_920 + 100),
            "the next start goes on from where the last stopped"
        );
        drop(unsynced);
        documents.sync().unwrap();
        assert!(documents.unsynced().is_empty());
        assert_eq!(documents.read(&third.file).unwrap(), vec![b'c'; 100]);
        assert_eq!(documents.read(&first.file).unwrap(), vec![b'a'; 5000]);
        assert_eq!(documents.read(&second.file).unwrap(), vec![b'b'; 70_000]);
    }

    #[test]
    fn a_full_segment_rolls_over_and_a_document_larger_than_one_has_its_own() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = documents(&scratch, true);
        let fill = documents.write(&vec![b'f'; 40 << 20]).unwrap();
        let next = documents.write(&vec![b'n'; 30 << 20]).unwrap();
        assert_ne!(fill.file.name, next.file.name, "70 MiB do not fit in 64");
        assert_eq!(next.file.offset, Some(0));
        let huge = documents.write(&vec![b'h'; 65 << 20]).unwrap();
        assert_ne!(huge.file.name, next.file.name);
        assert_eq!(huge.file.offset, Some(0), "alone in a new segment");
        let after = documents.write(b"{}").unwrap();
        assert_ne!(after.file.name, huge.file.name, "the huge one filled it");
        assert_eq!(documents.read(&huge.file).unwrap().len(), 65 << 20);
    }

    fn segments_in(documents: &Documents) -> usize {
        std::fs::read_dir(documents.dir())
            .unwrap()
            .filter(|e| is_segment_name(e.as_ref().unwrap().file_name().to_str().unwrap()))
            .count()
    }

    #[test]
    fn the_next_segment_is_made_ahead_once_the_current_is_half_full_and_used_at_roll_over() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = documents(&scratch, false);
        documents.prepare_next_segment();
        assert!(
            !documents.dir().exists(),
            "no document yet: no segment made"
        );
        let first = documents.write(&vec![b'a'; 20 << 20]).unwrap();
        documents.prepare_next_segment();
        assert_eq!(segments_in(&documents), 1, "under half full: not yet");
        let second = documents.write(&vec![b'b'; 20 << 20]).unwrap();
        documents.prepare_next_segment();
        documents.prepare_next_segment();
        assert_eq!(segments_in(&documents), 2, "one made ahead, once");
        let ahead = lock(&documents.next).as_ref().unwrap().name.clone();
        let third = documents.write(&vec![b'c'; 30 << 20]).unwrap();
        assert_eq!(
            third.file.name, ahead,
            "the roll-over took the one made ahead"
        );
        assert_eq!(third.file.offset, Some(0));
        assert_eq!(segments_in(&documents), 2, "and made none of its own");
        assert_eq!(documents.read(&second.file).unwrap().len(), 20 << 20);
        assert_eq!(documents.read(&third.file).unwrap().len(), 30 << 20);
        drop((first, second, third));
    }

    #[test]
    fn a_segment_that_cannot_be_made_ahead_is_made_by_the_write_that_needs_it() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = documents(&scratch, false);
        let first = documents.write(&vec![b'a'; 40 << 20]).unwrap();
        // A file where the directory was (as a disk that refuses new files, which a test run
        // as root cannot otherwise get): nothing is made ahead, and the checkpoint thread's
        // call only logs it.
        std::fs::rename(documents.dir(), scratch.path().join("moved-away")).unwrap();
        std::fs::write(documents.dir(), b"not a directory").unwrap();
        documents.prepare_next_segment();
        assert!(lock(&documents.next).is_none(), "nothing was made ahead");
        let err = documents
            .write(&vec![b'b'; 30 << 20])
            .expect_err("the roll-over cannot make a segment either");
        assert_eq!(err.kind(), std::io::ErrorKind::NotADirectory, "{err}");
        // Once files can be made again, the write that rolls over makes its own.
        std::fs::remove_file(documents.dir()).unwrap();
        let second = documents.write(&vec![b'b'; 30 << 20]).unwrap();
        assert_ne!(second.file.name, first.file.name);
        assert_eq!(second.file.offset, Some(0));
        assert_eq!(documents.read(&second.file).unwrap().len(), 30 << 20);
        drop((first, second));
    }

    #[test]
    fn a_segment_made_ahead_and_never_used_goes_when_its_handle_closes() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = documents(&scratch, false);
        let written = documents.write(&vec![b'a'; 40 << 20]).unwrap();
        documents.prepare_next_segment();
        assert_eq!(segments_in(&documents), 2);
        let named = written.file.name.clone();
        documents.close();
        drop(written);
        // A row names the one written to and keeps it; none names the one made ahead.
        let reclaimed =
            documents.reclaim(|name: &str| Ok::<_, std::convert::Infallible>(name == named));
        assert_eq!(reclaimed, 1);
        assert_eq!(segments_in(&documents), 1);
        assert!(documents.dir().join(&named).exists());
    }

    #[test]
    fn a_segment_is_removed_only_once_no_handle_may_append_to_it_and_no_row_names_it() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = documents(&scratch, false);
        let first = documents.write(b"{\"first\":1}").unwrap();
        let path = documents.dir().join(&first.file.name);
        documents.remove([first.file.name.clone()]);
        assert_eq!(documents.reclaim(never_named), 0, "still appended to");
        assert!(path.exists());
        assert!(documents.has_given_up(), "looked at again later");

        // Another handle (another process's, as far as the lock can tell) cannot take it
        // either while this one holds it.
        let other = Documents::new(&scratch.path().join("broker.sqlite"), false);
        other.remove([first.file.name.clone()]);
        assert_eq!(other.reclaim(never_named), 0);
        assert!(path.exists());

        // Closed, but a document written to it waits for its commit.
        documents.close();
        documents.sync().unwrap();
        assert_eq!(documents.reclaim(never_named), 0, "its writer holds it");
        assert!(path.exists());
        drop(first);

        // A row names it: kept, and no longer looked at.
        let named = |name: &str| Ok::<_, std::convert::Infallible>(name.ends_with(".seg"));
        assert_eq!(documents.reclaim(named), 0);
        assert!(path.exists());
        assert!(!documents.has_given_up());

        // That row goes: removed.
        documents.remove([path.file_name().unwrap().to_str().unwrap().to_owned()]);
        assert_eq!(documents.reclaim(never_named), 1);
        assert!(!path.exists());
        assert!(matches!(
            documents.read(&DocumentFile {
                name: path.file_name().unwrap().to_str().unwrap().to_owned(),
                offset: Some(0),
                len: 11,
                crc32: 0
            }),
            Err(ReadError::Missing)
        ));
    }

    /// How many bytes of `path` are in the page cache, by util-linux's `fincore`; `None` where
    /// it cannot be told (no `fincore`).
    fn cached_bytes(path: &Path) -> Option<u64> {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    }

    #[test]
    fn a_synced_document_leaves_the_page_cache() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = documents(&scratch, false);
        let json = vec![b'x'; 1 << 20];
        let written = documents.write(&json).unwrap();
        let path = documents.dir().join(&written.file.name);
        let Some(before) = cached_bytes(&path) else {
            eprintln!("SKIPPED: no `fincore` (util-linux) to tell what is in the page cache");
            return;
        };
        if before == 0 {
            eprintln!(
                "SKIPPED: {} keeps no page cache for a file just written",
                scratch.path().display()
            );
            return;
        }
        documents.sync().unwrap();
        let after = cached_bytes(&path).unwrap();
        // tmpfs has no disk to drop its pages to: they are the file.
        let tmpfs = rustix::fs::statfs(scratch.path()).unwrap().f_type == 0x0102_1994;
        if tmpfs {
            eprintln!("SKIPPED: {} is a tmpfs", scratch.path().display());
            return;
        }
        assert_eq!(
            after, 0,
            "{before} bytes cached before the sync, {after} after"
        );
        assert_eq!(
            documents.read(&written.file).unwrap(),
            json,
            "read back from the disk"
        );
    }

    #[test]
    fn only_names_the_broker_writes_are_accepted() {
        assert!(is_segment_name("0123456789abcdef0123456789abcdef.seg"));
        assert!(is_legacy_name("0123456789abcdef0123456789abcdef.json"));
        assert!(!is_segment_name("0123456789abcdef0123456789abcdef.json"));
        for bad in [
            "../0123456789abcdef0123456789abcde.seg",
            "0123456789ABCDEF0123456789ABCDEF.seg",
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef.seg/..",
            "",
        ] {
            assert!(!is_segment_name(bad), "{bad}");
            assert!(!is_legacy_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_row_naming_an_impossible_place_reads_as_lost() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = documents(&scratch, false);
        let written = documents.write(b"{}").unwrap();
        for (offset, len) in [(Some(-1), 2), (Some(0), -2), (None, 2)] {
            let file = DocumentFile {
                offset,
                len,
                ..written.file.clone()
            };
            assert!(
                matches!(documents.read(&file), Err(ReadError::Lost(_))),
                "{offset:?} {len}"
            );
        }
    }
}
