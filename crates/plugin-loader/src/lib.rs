//! Finds, verifies and loads `vcon-host` storage plugins, and calls them through a safe handle.
//!
//! Used by the host (for the storages in `config.yml`) and by the conformance suite (to test any
//! plugin file), so both load plugins exactly the same way.
//!
//! # Load order
//!
//! Each refusal is one [`LoadError`] naming the file, what was expected and what was found:
//!
//! 1. the file exists and matches its `sha256:` pin, if any (before `dlopen`: loading runs code);
//! 2. it is a shared library for this machine that exports abi_stable's root-module symbol
//!    (read with the `object` crate; no code runs);
//! 3. `dlopen`, then the abi_stable header (another abi_stable major is refused);
//! 4. the root module is named `vcon_storage` (otherwise another program's plugin);
//! 5. the ABI major equals this host's;
//! 6. the layout of every type reachable from the root module matches (abi_stable's check,
//!    summarised to its first mismatch);
//! 7. the plugin's name equals the one the config asks for ([`PluginLibrary::expect_name`]);
//! 8. `open(options)`.
//!
//! # Why not `RootModule::load_from_file`
//!
//! abi_stable keeps one static per interface type there, so a second plugin file silently comes
//! back as the first. This crate uses the header-level API and keys its own registry by
//! canonical path. Libraries are never unloaded (abi_stable does not support it, and unloading
//! code that may still run is unsound), so handles are `'static`.

mod error;
mod host_callbacks;
mod library;
mod search;
mod storage;

pub use error::{CallError, LoadError};
pub use host_callbacks::host_callbacks;
pub use library::{PluginLibrary, PluginMeta, Sha256Pin};
pub use plugin_abi::{Capabilities, ErrorKind, VconRecord};
pub use search::{plugin_file_names, PluginCandidate, SearchPath};
pub use storage::StorageInstance;
