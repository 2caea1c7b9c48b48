//! The built `spaceandtime` plugin, loaded through the real loader, against the local Space and
//! Time emulator (`crates/sxt-emulator`): this machine cannot reach the real service, so these
//! tests verify the plugin against the emulator only.
//!
//! The plugin is the release build `cargo xtask build-plugins` puts in `target/plugins` (or
//! `VCON_PLUGIN_DIR`, as `cargo xtask test` sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

mod behaviour;
mod conformance;
