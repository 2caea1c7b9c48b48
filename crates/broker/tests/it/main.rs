//! The brokers against their real stores: a SQLite file, and the Redis server on loopback.

#![allow(clippy::unwrap_used)]

mod contract;
mod documents;
mod redis;
mod sqlite;
