//! The built `object-store` plugin, loaded through the real loader, against a real
//! S3-compatible server on loopback (moto, see `s3server`) and real local directories.
//!
//! The plugin is the release build `cargo xtask build-plugins` puts in `target/plugins` (or
//! `VCON_PLUGIN_DIR`, as `cargo xtask test` sets it). Tests that need the S3 server skip loudly
//! when it cannot be had, and fail instead under `VCON_REQUIRE_SERVICES=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod fixtures;
mod s3server;

mod compat;
mod conformance;
mod failures;
mod operations;
