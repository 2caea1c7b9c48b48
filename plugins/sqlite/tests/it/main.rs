//! The built `sqlite` plugin, loaded through the real loader, against real SQLite files.
//!
//! The plugin is the release build `cargo xtask build-plugins` puts in `target/plugins` (or
//! `VCON_PLUGIN_DIR`, as `cargo xtask test` sets it).
//!
//! The tests also open the database files directly with rusqlite, to see what the plugin wrote.
//! That is a second copy of SQLite in this process beside the plugin's, and POSIX file locks are
//! per process, so the two copies cannot see each other's locks: a direct connection closing
//! while the plugin has the file open would take it for the last user and remove the WAL under
//! the plugin. So each test uses its own file, looks into it only while no storage is open on it
//! (`fixtures::inspect`), and holds locks against the plugin from a child process
//! (`safety::hold_write_lock_in_child`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

mod batch;
mod conformance;
mod operations;
mod safety;
mod schema;
