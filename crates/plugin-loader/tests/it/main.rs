//! The loader against real plugin files: every refusal of the load order, and the guarantees a
//! host relies on (independent instances, caught panics, forwarded logs).
//!
//! The plugins are the release builds `cargo xtask test` puts in `target/plugins` and
//! `target/test-plugins` (or `VCON_PLUGIN_DIR` / `VCON_TEST_PLUGIN_DIR`).
#![allow(clippy::unwrap_used)]

mod fixtures;
mod load_order;
mod runtime;
