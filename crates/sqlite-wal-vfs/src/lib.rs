//! A SQLite VFS that writes each WAL commit with one system call.
//!
//! SQLite appends a commit to the write-ahead log frame by frame, and each frame with two
//! `pwrite`s: its 24-byte header, then its page. A `POST /vcon` commit touches about twenty
//! pages, so forty system calls, each taking the file's lock and updating its times. This VFS
//! wraps the platform's default one and, for WAL files only, gathers the frames a transaction
//! appends in memory and hands them to the default VFS in one write when the commit frame is
//! complete. Everything else goes straight through.
//! `cargo xtask bench wal-vfs` measures a broker-like commit both ways (about 82 µs through the
//! default VFS, 56 µs through this one, on the 2-core machine of docs/benchmarks.md).
//!
//! Why it is safe (`src/wal.rs` has the rules in code):
//! - Nothing is ever left in the buffer once a commit's last frame is written, so when SQLite
//!   publishes the commit in the shared WAL index (which it does after writing the frames) every
//!   byte of it is in the file: readers in this or another process, and the recovery after a
//!   crash, see exactly what they would without this VFS.
//! - Only frames appended at the end of the log are gathered. Rewrites of earlier frames (a
//!   page written twice in one transaction, the checksum rewrite that follows) go straight
//!   through, after whatever was gathered before them.
//! - A read, sync, truncate or size query of the WAL first writes what is gathered, so SQLite
//!   never reads stale bytes; a failed write is reported to SQLite on the call that wrote it (the
//!   commit frame's), so the transaction fails as it would have.
//!
//! Why hand-written: the crates that implement VFSs in Rust (`sqlite-vfs`, `sqlite-plugin`)
//! build a whole VFS from a trait, which would mean re-implementing the default VFS's locking
//! and shared memory. A shim that forwards to the default VFS, as SQLite's own `vfstrace` and
//! multiplexor shims do, keeps its behaviour for everything but the WAL writes.

#![allow(unsafe_code)] // The SQLite VFS interface is a C ABI: every entry point is `extern "C"`.

mod shim;
mod wal;

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rusqlite::{Connection, OpenFlags};

/// The name the VFS is registered under; pass it to `Connection::open_with_flags_and_vfs`, or
/// use [`open`].
pub const VFS_NAME: &str = "vcon-wal-batch";

/// Why the VFS could not be registered.
#[derive(Debug, thiserror::Error, Clone)]
pub enum VfsError {
    /// SQLite has no default VFS to wrap (a build without one).
    #[error("SQLite has no default VFS to wrap")]
    NoDefault,
    /// `sqlite3_vfs_register` refused.
    #[error("SQLite refused to register the `{VFS_NAME}` VFS (code {0})")]
    Register(i32),
}

/// Registers the VFS once per process (later calls answer the first call's outcome).
pub fn register() -> Result<&'static str, VfsError> {
    static REGISTERED: OnceLock<Result<(), VfsError>> = OnceLock::new();
    REGISTERED
        .get_or_init(shim::register)
        .clone()
        .map(|()| VFS_NAME)
}

/// Opens `path` read-write (creating it) through this VFS.
pub fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    open_with_flags(path, OpenFlags::default())
}

/// Opens `path` with `flags` through this VFS, registering it first. A VFS that cannot be
/// registered is answered as SQLite's own "cannot open" error, with the reason.
pub fn open_with_flags(path: &std::path::Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let vfs = register().map_err(|err| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(err.to_string()),
        )
    })?;
    Connection::open_with_flags_and_vfs(path, flags, vfs)
}

/// How many writes this process has handed to the default VFS for WAL files, and how many
/// frames they carried: what a test or a benchmark reads to see the gathering work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalWrites {
    /// Write calls made to the WAL files (a gathered run counts one per piece of up to 124 KiB).
    pub calls: u64,
    /// Frames written to WAL files (gathered or not).
    pub frames: u64,
}

static CALLS: AtomicU64 = AtomicU64::new(0);
static FRAMES: AtomicU64 = AtomicU64::new(0);

/// The process-wide [`WalWrites`] counters so far.
pub fn wal_writes() -> WalWrites {
    WalWrites {
        calls: CALLS.load(Ordering::Relaxed),
        frames: FRAMES.load(Ordering::Relaxed),
    }
}

/// Counts one write call carrying `frames` frame headers.
fn count_write(frames: u64) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    count_frames(frames);
}

fn count_frames(frames: u64) {
    FRAMES.fetch_add(frames, Ordering::Relaxed);
}

/// The VFS name as SQLite wants it.
const VFS_NAME_C: &CStr = c"vcon-wal-batch";
