//! `vcon-host`: moves vCon conversation records through processing chains into storage
//! backends loaded as plugins.
//!
//! The library behind the `vcon-host` binary, split so the integration tests and benchmarks
//! drive the same code the binary runs. The flow of one vCon:
//!
//! 1. [`broker::HotVcon::from_json`] validates a document with `crates/vcon` and extracts its
//!    index fields; the [`broker`] (its own crate, `vcon-broker`) stores it in the hot store and queues its uuid on ingress lists, in one
//!    transaction;
//! 2. a [`worker`] claims a batch of uuids, runs the chain's [`links`], then writes every
//!    storage of the chain in parallel through the [`storages`] layer (retries, time-outs,
//!    concurrency limits), and only then pushes egress lists;
//! 3. failures go to dead-letter lists, replayed by [`commands::dlq`].
//!
//! [`stored_form`] is what a vCon entering at ingress is stored as (its whitespace dropped).
//! [`pipeline`] is a config compiled into what workers run; [`app`] gathers what every command
//! needs; [`plugin_paths`] is where plugins are looked up.

pub mod api;
pub mod app;
pub use vcon_broker as broker;
pub mod commands;
pub mod links;
pub mod metrics;
pub mod pipeline;
pub mod plugin_paths;
pub mod storages;
pub mod stored_form;
pub mod worker;
