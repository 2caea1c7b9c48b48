//! The built `postgres` plugin, loaded through the real loader, against the real PostgreSQL
//! server on this machine (127.0.0.1:5432, database `test`, trust auth; see `fixtures` for the
//! environment variables that point elsewhere).
//!
//! The plugin is the release build `cargo xtask build-plugins` puts in `target/plugins` (or
//! `VCON_PLUGIN_DIR`, as `cargo xtask test` sets it). Each test works on its own table
//! (`t_<random>`), dropped at the end, so tests run in parallel and never touch a real `vcons`
//! table. When the server is not reachable the tests say so loudly and pass, unless
//! `VCON_REQUIRE_SERVICES=1` (as CI sets), where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod fixtures;

mod conformance;
mod errors;
mod operations;
mod restart;
mod safety;
mod schema;
