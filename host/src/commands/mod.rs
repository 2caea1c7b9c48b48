//! The CLI's commands, one module per family.

pub mod dlq;
pub mod ingest;
pub mod plugins;
pub mod provision;
pub mod run;
pub mod vcons;
