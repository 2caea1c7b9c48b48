//! The built `file` plugin, loaded through the real loader, against real directories.
//!
//! The plugin is the release build `cargo xtask build-plugins` puts in `target/plugins` (or
//! `VCON_PLUGIN_DIR`, as `cargo xtask test` sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

mod compat;
mod conformance;
mod layout;
mod operations;
mod safety;
