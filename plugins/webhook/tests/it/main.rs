//! The built `webhook` plugin, loaded through the real loader, against a real HTTP server the
//! tests start on loopback.
//!
//! The plugin is the release build `cargo xtask build-plugins` puts in `target/plugins` (or
//! `VCON_PLUGIN_DIR`, as `cargo xtask test` sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server;

mod behaviour;
mod conformance;

use std::path::PathBuf;

use plugin_loader::{PluginLibrary, StorageInstance};

/// The built plugin file.
pub(crate) fn plugin_path() -> PathBuf {
    ::conformance::test_data::built_plugin("webhook")
}

/// A storage opened with `options`.
pub(crate) fn open(options: &serde_json::Value) -> StorageInstance {
    PluginLibrary::load(&plugin_path(), None)
        .unwrap()
        .open(&options.to_string())
        .unwrap_or_else(|err| panic!("opening with {options}: {err}"))
}
