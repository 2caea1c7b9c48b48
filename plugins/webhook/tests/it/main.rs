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
    let dir = std::env::var_os("VCON_PLUGIN_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/plugins")),
        PathBuf::from,
    );
    let path = dir.join("libvcon_storage_webhook.so");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask build-plugins` first",
        path.display()
    );
    path
}

/// A storage opened with `options`.
pub(crate) fn open(options: &serde_json::Value) -> StorageInstance {
    PluginLibrary::load(&plugin_path(), None)
        .unwrap()
        .open(&options.to_string())
        .unwrap_or_else(|err| panic!("opening with {options}: {err}"))
}
