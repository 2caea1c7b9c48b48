//! `crates/vcon` against the shared test vCons and arbitrary input.
#![allow(clippy::unwrap_used)]

mod fixtures;
mod never_panics;
mod scanned;
mod variations;

use std::path::PathBuf;

/// The shared test vCons (`../shared/vcons` beside the repository, or `VCON_TEST_DATA`).
pub(crate) fn shared() -> PathBuf {
    let dir = std::env::var_os("VCON_TEST_DATA").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/vcons"
            ))
        },
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "{} is missing: the shared test vCons sit beside the repository",
        dir.display()
    );
    dir
}
