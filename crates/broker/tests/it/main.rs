//! The brokers against their real stores: a SQLite file, and the Redis server on loopback.

mod contract;
mod sqlite;
