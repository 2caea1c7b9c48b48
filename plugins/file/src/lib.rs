//! The `file` storage plugin: one JSON file per vCon in a directory, in the layout of the
//! Python vCon Server's `storage.file`, so a directory written by either is read by the other.
//!
//! # Layout
//!
//! ```text
//! {path}/
//!   {uuid}.json                      organize_by_date: false
//!   YYYY/MM/DD/{uuid}.json[.gz]      organize_by_date: true (the default); the date is
//!                                    created_at in the document's own UTC offset
//!   .index/{uuid} -> ../YYYY/MM/DD/{uuid}.json[.gz]
//! ```
//!
//! The file holds the document exactly as the host received it (gzipped with
//! `compression: true`). Hidden names (`.index`, temporary files) are invisible to the Python
//! module's globs.
//!
//! # The index
//!
//! `get(uuid)` has no date, and the Python module answers it by globbing the whole tree, once
//! per lookup and per miss. Here each dated file has an index entry, a symbolic link
//! `.index/{uuid}` to it, so a lookup is one `readlink` and one `open`, and a miss three
//! system calls (index, flat `.json`, flat `.json.gz`). Flat files need no entry. The link
//! target is parsed, never followed blindly: it must be exactly a date path of the same uuid.
//! A directory the Python server wrote has no index: it is built at the first open (and
//! rebuilt by `provision`); the `index` module documents the crash order that keeps entries trustworthy.
//!
//! # Why atomic writes
//!
//! The Python module truncates the target and writes into it: a crash or a full disk midway
//! leaves a torn `{uuid}.json` that later reads cannot parse. Here every file is written to a
//! hidden temporary name in the same directory, given its mode, fsynced and renamed over the
//! target, and the directory is fsynced before the save is acknowledged. A reader sees the old
//! document or the new one, never a mixture; a crash leaves at most a temporary file, which
//! every operation ignores and `clear`/`provision` remove once it is an hour old. A batch
//! (`save_many`) fsyncs each directory once for the whole batch.
//!
//! # Differences from the Python module
//!
//! - `path` defaults to `./data/vcons` (relative to the host's working directory), not
//!   `/data/vcons`.
//! - Modes are accepted however YAML spells them ([`Mode`]); the Python module fails on its
//!   own example `0o644` after writing the file.
//! - Errors are reported, with a kind the host retries on (a full disk) or not (a document
//!   over `max_file_size`); the Python module answers `None` for any read error.
//! - A document without `created_at` is filed by the time the host first stored it (the host
//!   always supplies one), where the Python module files it flat.
//! - Only Unix is supported (modes, symbolic links).

mod error;
mod fsops;
mod index;
mod layout;
mod options;
mod storage;

pub use options::{Mode, Options, DEFAULT_MAX_FILE_SIZE, DEFAULT_PATH};
pub use storage::FileStorage;

plugin_sdk::export_storage_plugin!(FileStorage);
