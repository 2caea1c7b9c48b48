//! The built `redis` plugin, loaded through the real loader, against the real Redis server on
//! this machine (127.0.0.1:6379, logical database 11 only; `VCON_TEST_REDIS_URL` points
//! elsewhere).
//!
//! The plugin is the release build `cargo xtask build-plugins` puts in `target/plugins` (or
//! `VCON_PLUGIN_DIR`, as `cargo xtask test` sets it). Each test works under its own key prefix
//! (`vcon_test_<random>`), whose keys it removes at the end, so tests run in parallel and never
//! touch anything else in the database (and never flush it). When the server is not reachable
//! the tests say so loudly and pass, unless `VCON_REQUIRE_SERVICES=1` (as CI sets), where they
//! fail. The restart tests run a private `redis-server` of their own (skipped loudly when it is
//! not installed, with the same `VCON_REQUIRE_SERVICES` rule).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod fixtures;

mod batches;
mod conformance;
mod errors;
mod layout;
mod restart;
