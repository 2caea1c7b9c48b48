//! The `vcon-host` binary driven as an operator would, through real processes, real plugin
//! files, real SQLite files and directories.
#![allow(clippy::unwrap_used)]

mod api;
mod chains_e2e;
mod config_cli;
mod faulty_broker;
mod group_commit;
mod plugins_cli;
mod redis_hosts;
mod stager;
mod support;
