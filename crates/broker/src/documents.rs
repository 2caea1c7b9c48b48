//! Large hot-store documents, kept as files beside the embedded broker's database.
//!
//! Why: SQLite writes a document twice, into the WAL at commit and into the database when the
//! WAL is checkpointed, and the checkpoint fsyncs both, at times while the writers wait. For a
//! 270 KB vCon (the reference's `cat1`) that is 83 WAL pages a commit, and on the development
//! machine's disk the disk's bandwidth, not the CPU, set how many large `POST /vcon`s a second
//! the host took (docs/benchmarks.md). A document of [`LARGE_DOCUMENT_BYTES`] or more is instead
//! written once, to a file of its own, and its row keeps the file's name and length.
//!
//! Each write goes to a file under a fresh random name, so a replaced document's file is only
//! given up once the commit that replaced it is in: a reader never finds its row pointing at a
//! half-written file. Files of a commit that failed are given up at once; those of a process
//! that died between the write and the commit are found and removed by [`Documents::sweep`].
//!
//! A file given up is kept as a spare (renamed `spare-….json`, up to [`SPARE_FILES`] of them)
//! and the next write renames a spare to its fresh name and writes over it, instead of
//! creating a file: an inode is not freed and allocated again for each vCon that comes and goes.
//! On ext4 without a journal (the development machine's disk), the kernel skips every inode freed
//! in the last 30 seconds when it allocates one, so under steady churn each create scanned past
//! thousands of them: 300–400 µs a file in `strace`, against 10 µs.
//!
//! Once a file is on the disk its pages are dropped from the page cache, so the next document
//! is written into pages the kernel just had back rather than ones it never handed out before
//! ([`Documents::sync`] has the figures).
//!
//! Durability matches the WAL's at `synchronous=NORMAL`: a file is in the kernel's cache when
//! its commit is, so it survives a crash of the process. Against a power loss, while
//! `vcon-host run` holds the broker its checkpoint thread fsyncs the files written since its
//! last round before it fsyncs the WAL (every 100 ms), and a handle without that thread (the
//! `ingest` command, the CLI) fsyncs each file before its commit. A row whose file is missing,
//! or not the length and CRC-32 recorded, reads as absent, with an error in the log saying so.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Documents of this many bytes or more are kept as files. Below it a file's create and close
/// cost more than the pages they spare the WAL (a 5 KB vCon is two pages).
pub(crate) const LARGE_DOCUMENT_BYTES: usize = 64 * 1024;

/// Files given up are kept as spares up to this many (70 MB of `cat1`s); more are removed.
const SPARE_FILES: usize = 256;

/// A file younger than this is never swept: another process (`vcon-host ingest`) may have
/// written it and not committed yet.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(600);

/// Why [`Documents::read`] found no document.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// No such file: replaced or deleted since the row was read, or lost.
    Missing,
    /// The file is there but not what the row recorded, or cannot be read.
    Lost(String),
}

/// Where a large document was written: what its row records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocumentFile {
    /// The file's name in the documents directory ([`is_document_name`]).
    pub(crate) name: String,
    /// Its length, so a file cut short (a power loss before it reached the disk) is caught.
    pub(crate) len: i64,
    /// Its CRC-32, so a file whose new data a power loss kept from the disk (a spare's old
    /// document, or blocks never written) is caught too. Hardware CRC: 0.5 % of the API
    /// thread's samples in a `perf record` of one-client cat1 `POST`s (docs/benchmarks.md).
    pub(crate) crc32: i64,
}

/// A large document written to its file before its vCon is ingested
/// ([`crate::Broker::stage_document`]), so the write can overlap the document's validation: for
/// `POST /vcon` of a 270 KB vCon with one client, the file write and its CRC run on the other
/// core while the API thread validates (the p50 fell from 540–661 µs to 436–477 µs in `cargo
/// xtask bench api`, docs/benchmarks.md). Given up when dropped unless an ingest
/// recorded it, so a document that turns out invalid leaves nothing behind.
#[derive(Debug)]
pub struct StagedDocument {
    file: DocumentFile,
    documents: Arc<Documents>,
    /// Taken by the ingest that records it (only one may), and given back if that ingest
    /// fails.
    taken: AtomicBool,
}

impl StagedDocument {
    pub(crate) fn new(file: DocumentFile, documents: Arc<Documents>) -> Self {
        Self {
            file,
            documents,
            taken: AtomicBool::new(false),
        }
    }

    /// The file, for an ingest into `documents` of a document of `len` bytes, if it is one of
    /// theirs and no other ingest took it. [`Self::give_back`] if the ingest fails.
    pub(crate) fn take(&self, documents: &Arc<Documents>, len: usize) -> Option<&DocumentFile> {
        let fits = Arc::ptr_eq(&self.documents, documents)
            && i64::try_from(len).ok() == Some(self.file.len);
        let taken = fits
            && self
                .taken
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        taken.then_some(&self.file)
    }

    /// Undoes [`Self::take`]: the ingest that took the file did not commit.
    pub(crate) fn give_back(&self) {
        self.taken.store(false, Ordering::Release);
    }
}

impl PartialEq for StagedDocument {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file
    }
}

impl Eq for StagedDocument {}

impl Drop for StagedDocument {
    fn drop(&mut self) {
        if !*self.taken.get_mut() {
            self.documents.remove([self.file.name.clone()]);
        }
    }
}

/// The documents directory of one broker file.
#[derive(Debug)]
pub(crate) struct Documents {
    dir: PathBuf,
    /// Fsync each file before its commit (no checkpoint thread to do it).
    sync_each: bool,
    /// Files written and not yet fsynced, for the checkpoint thread.
    unsynced: Mutex<Vec<PathBuf>>,
    /// Spare files to write over ([`SPARE_FILES`] at most).
    spares: Mutex<Vec<PathBuf>>,
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
            unsynced: Mutex::new(Vec::new()),
            spares: Mutex::new(Vec::new()),
        }
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn unsynced(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        lock(&self.unsynced)
    }

    fn spares(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        lock(&self.spares)
    }

    /// A file at `path` to write a document into: a spare renamed there (`true`: it may hold
    /// an older, longer document), else a new one.
    fn open_for(&self, path: &Path) -> std::io::Result<(File, bool)> {
        loop {
            let Some(spare) = self.spares().pop() else {
                break;
            };
            // Another process (`vcon-host ingest`) may have taken it: try the next.
            if std::fs::rename(&spare, path).is_ok() {
                return Ok((OpenOptions::new().write(true).open(path)?, true));
            }
        }
        let file = match create(path) {
            Err(err) if err.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)?;
                create(path)
            }
            other => other,
        }?;
        Ok((file, false))
    }

    /// Writes `json` to a new file, before the commit that records it.
    pub(crate) fn write(&self, json: &[u8]) -> std::io::Result<DocumentFile> {
        let name = format!("{:032x}.json", rand::random::<u128>());
        let path = self.dir.join(&name);
        let (mut file, spare) = self.open_for(&path)?;
        // Written from the start; a spare is then cut to this document's length.
        let written = file.write_all(json).and_then(|()| {
            if spare {
                file.set_len(json.len() as u64)?;
            }
            if self.sync_each {
                sync_and_drop(&file)
            } else {
                Ok(())
            }
        });
        if let Err(err) = written {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        if !self.sync_each {
            self.unsynced().push(path);
        }
        Ok(DocumentFile {
            name,
            len: i64::try_from(json.len()).unwrap_or(i64::MAX),
            crc32: i64::from(crc32fast::hash(json)),
        })
    }

    /// Reads a document its row names. A missing file may only mean another process replaced
    /// or deleted the vCon since its row was read ([`ReadError::Missing`]: read the row again);
    /// a file of the wrong length, or a name this broker never makes, means the copy is lost.
    pub(crate) fn read(&self, file: &DocumentFile) -> Result<Vec<u8>, ReadError> {
        if !is_document_name(&file.name) {
            return Err(ReadError::Lost(format!(
                "its row names the document file {:?}, which this broker never writes",
                file.name
            )));
        }
        let path = self.dir.join(&file.name);
        match std::fs::read(&path) {
            Ok(bytes) if i64::try_from(bytes.len()).ok() != Some(file.len) => {
                Err(ReadError::Lost(format!(
                    "{} holds {} of its {} bytes (cut short, most likely by a power loss before \
                     it reached the disk)",
                    path.display(),
                    bytes.len(),
                    file.len
                )))
            }
            Ok(bytes) if i64::from(crc32fast::hash(&bytes)) != file.crc32 => {
                Err(ReadError::Lost(format!(
                    "{} does not hold the document its row was written with (its checksum \
                     differs: most likely a power loss before it reached the disk)",
                    path.display()
                )))
            }
            Ok(bytes) => Ok(bytes),
            Err(err) if err.kind() == ErrorKind::NotFound => Err(ReadError::Missing),
            Err(err) => Err(ReadError::Lost(format!(
                "reading {}: {err}",
                path.display()
            ))),
        }
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

    /// Gives up files no row names any more (replaced, deleted, expired, or written by a
    /// commit that failed): each becomes a spare, or is removed when there are enough. Best
    /// effort: a file left behind is swept later.
    pub(crate) fn remove(&self, names: impl IntoIterator<Item = String>) {
        for name in names.into_iter().filter(|n| is_document_name(n)) {
            let path = self.dir.join(&name);
            if self.spares().len() < SPARE_FILES {
                let spare = self.dir.join(spare_name());
                if std::fs::rename(&path, &spare).is_ok() {
                    self.spares().push(spare);
                    continue;
                }
            }
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

    /// Fsyncs the files written since the last call, then the directory that names them. The
    /// checkpoint thread calls it before each checkpoint, which fsyncs the WAL. A round that
    /// fails leaves its files to the next.
    ///
    /// Each file's pages are then dropped from the page cache (`POSIX_FADV_DONTNEED`), as
    /// PostgreSQL does with a WAL segment it is done with: a document is written once and read
    /// at most once more (by the chain's worker, or a `GET`), and the pages it frees are the
    /// ones the kernel hands the next document's write. Left cached, every write takes pages
    /// the page cache never had, and on the development machine (a virtual machine) those cost
    /// several times a recycled page: the broker write of a cat1 took a mean of 628–1,111 µs
    /// with them and 247–301 µs with the pages dropped (`cargo xtask bench api --
    /// broker-only`, docs/benchmarks.md). A reader that comes later reads from the disk; it
    /// does so without holding the broker's connection (`SqliteBroker::get_vcons`).
    ///
    /// Each file on its own, not one `syncfs` of the filesystem: that would flush the device
    /// once a round instead of once a file, but it also writes back whatever else is dirty on
    /// the filesystem (a database or a storage beside the broker) every 100 ms. With 64 clients
    /// posting cat1 it made no difference this machine could measure; once the pages were
    /// dropped, one client's cat1s ran about 10 % faster with it (docs/benchmarks.md). Keeping
    /// that gain without flushing the rest takes fewer files to fsync: large documents appended
    /// to a few segment files, not built yet.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        let pending = std::mem::take(&mut *self.unsynced());
        if pending.is_empty() {
            return Ok(());
        }
        let synced = pending
            .iter()
            .try_for_each(
                |path| match File::open(path).and_then(|f| sync_and_drop(&f)) {
                    // Replaced or deleted since: nothing left to keep.
                    Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
                    other => other,
                },
            )
            .and_then(|()| File::open(&self.dir)?.sync_all());
        if synced.is_err() {
            self.unsynced().extend(pending);
        }
        synced
    }

    /// Gives up document files older than [`SWEEP_MIN_AGE`] that no row names: those of a
    /// process that died between writing a document and committing it. Spares an earlier run
    /// left become this one's (up to [`SPARE_FILES`], the rest are removed). Answers how many
    /// files were given up or removed.
    pub(crate) fn sweep(&self, referenced: &HashSet<String>) -> std::io::Result<usize> {
        let entries = match std::fs::read_dir(&self.dir) {
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(0),
            other => other?,
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if is_spare_name(&name) {
                let mut spares = self.spares();
                if spares.len() < SPARE_FILES {
                    spares.push(entry.path());
                    continue;
                }
                drop(spares);
                std::fs::remove_file(entry.path())?;
                removed += 1;
                continue;
            }
            if !is_document_name(&name) || referenced.contains(&name) {
                continue;
            }
            let old_enough = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| now.duration_since(at).ok())
                .is_some_and(|age| age >= SWEEP_MIN_AGE);
            if old_enough {
                self.remove([name]);
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Fsyncs `file`, then drops its pages from the page cache ([`Documents::sync`] says why).
/// Dropping is advice: a filesystem that ignores it (tmpfs) keeps them, which is no error.
fn sync_and_drop(file: &File) -> std::io::Result<()> {
    file.sync_data()?;
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn spare_name() -> String {
    format!("spare-{:032x}.json", rand::random::<u128>())
}

/// Whether `name` is a spare's ([`spare_name`]).
fn is_spare_name(name: &str) -> bool {
    name.strip_prefix("spare-").is_some_and(is_document_name)
}

fn create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Whether `name` is one [`Documents::write`] makes (32 lowercase hex digits and `.json`):
/// checked before a name read from the database is joined to the directory.
pub(crate) fn is_document_name(name: &str) -> bool {
    name.strip_suffix(".json").is_some_and(|stem| {
        stem.len() == 32
            && stem
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_that_fails_is_tried_again_at_the_next_round() {
        let scratch = tempfile::tempdir().unwrap();
        let documents = Documents::new(&scratch.path().join("broker.sqlite"), false);
        // Nothing written: nothing to sync, even with no directory yet.
        documents.sync().unwrap();
        documents.write(b"{}").unwrap();
        std::fs::remove_dir_all(documents.dir()).unwrap();
        assert!(documents.sync().is_err(), "the directory is gone");
        assert_eq!(
            documents.unsynced().len(),
            1,
            "the failed round leaves its file to the next"
        );
        std::fs::create_dir(documents.dir()).unwrap();
        documents.sync().unwrap();
        assert!(documents.unsynced().is_empty());
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
        let documents = Documents::new(&scratch.path().join("broker.sqlite"), false);
        let json = vec![b'x'; 1 << 20];
        let file = documents.write(&json).unwrap();
        let path = documents.dir().join(&file.name);
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
            documents.read(&file).unwrap(),
            json,
            "read back from the disk"
        );
    }

    #[test]
    fn only_names_the_broker_writes_are_accepted() {
        assert!(is_document_name("0123456789abcdef0123456789abcdef.json"));
        for bad in [
            "../0123456789abcdef0123456789abcde.json",
            "0123456789ABCDEF0123456789ABCDEF.json",
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef.json/..",
            "",
        ] {
            assert!(!is_document_name(bad), "{bad}");
        }
    }
}
