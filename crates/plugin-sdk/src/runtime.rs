//! A small tokio runtime owned by the plugin, for async drivers.
//!
//! The host's runtime is never handed to a plugin: each `cdylib` links its own tokio, and
//! mixing runtimes across the boundary is unsound (a foreign `Handle` has crashed and hung other
//! projects). Calls arrive on the host's blocking pool, so blocking on this runtime there is
//! fine. It is built on first use with two worker threads named `vcon-plugin-rt`, and lives as
//! long as the process (plugins are never unloaded).

use std::future::Future;
use std::sync::OnceLock;

use crate::StorageError;

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The plugin's runtime, built on first use.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, StorageError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("vcon-plugin-rt")
                .enable_all()
                .build()
                .map_err(|err| format!("cannot start the plugin's async runtime: {err}"))
        })
        .as_ref()
        .map_err(|err| StorageError::internal(err.clone()))
}

/// Runs a future to completion on the plugin's runtime, from a synchronous storage method.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, StorageError> {
    Ok(runtime()?.block_on(future))
}
