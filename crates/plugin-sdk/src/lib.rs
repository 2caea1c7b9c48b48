//! Write a `vcon-host` storage plugin in safe Rust.
//!
//! A plugin is a `cdylib` crate that implements [`Storage`] (the operations) and
//! [`StoragePlugin`] (its name, capabilities and how to open it from its options), then exports
//! itself with one line, [`export_storage_plugin!`]. The SDK does the rest:
//!
//! - it exports the stable ABI root module (`plugin-abi`), so the host can load the plugin
//!   built by anyone, at any time, against the same ABI major;
//! - it catches every panic at the boundary and answers an `INTERNAL` error instead (an
//!   escaping panic would otherwise end the host process);
//! - it parses the `options:` map of `config.yml` into your typed options and names the exact
//!   key when one is wrong ([`parse_options`]);
//! - it forwards your `tracing` events to the host's log ([`logging`]): a plugin has its own
//!   copy of `tracing`, whose events would otherwise vanish.
//!
//! A plugin written on the SDK contains no `unsafe` and no `abi_stable` type.
//!
//! ```ignore
//! use plugin_sdk::{export_storage_plugin, Capabilities, OpenContext, Storage, StorageError,
//!                  StoragePlugin, VconRecord};
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(deny_unknown_fields, default)]
//! pub struct Options { path: String }
//!
//! pub struct MyStorage { /* a pool, a client... */ }
//!
//! impl Storage for MyStorage {
//!     fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> { Ok(()) }
//! }
//!
//! impl StoragePlugin for MyStorage {
//!     type Options = Options;
//!     const NAME: &'static str = "mine";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const DESCRIPTION: &'static str = "stores vCons somewhere";
//!     const CAPABILITIES: Capabilities = Capabilities::NONE;
//!     fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> { Ok(MyStorage {}) }
//! }
//!
//! export_storage_plugin!(MyStorage);
//! ```
//!
//! # Features
//!
//! - `runtime`: `runtime::block_on`, a small tokio runtime owned by the plugin, for async
//!   drivers. The host's runtime is never shared with a plugin (each `cdylib` has its own tokio;
//!   sharing one is unsound).
//! - `http`: `http::HttpClient`, a blocking HTTP client with time-outs, retries with back-off
//!   and HTTP statuses mapped to error kinds, for plugins that store into a web API.
//!
//! # Why synchronous
//!
//! The host calls plugins on its blocking pool, under a per-storage concurrency limit. That keeps
//! futures out of the ABI (they are not FFI-safe) and lets drivers with their own threads (the
//! `postgres` crate, `rusqlite`) work as they are. Batches ([`Storage::save_many`]) amortise the
//! hand-off.

mod error;
mod export;
#[cfg(feature = "http")]
pub mod http;
pub mod logging;
mod options;
mod record;
#[cfg(feature = "runtime")]
pub mod runtime;
mod storage;

pub use error::{ErrorKind, StorageError};
pub use options::{number_or_string, parse_options, Secret};
pub use plugin_abi::Capabilities;
pub use record::VconRecord;
pub use storage::{
    BatchResult, ListPage, ListRequest, OpenContext, PartyQuery, ProvisionRequest, Storage,
    StoragePlugin,
};

/// The SDK's version, recorded in each plugin's info so `plugins list` can show it.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What [`export_storage_plugin!`] expands to. Not part of the SDK's API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::lib_header;
    pub use plugin_abi::__private::LibHeader;
}

/// Exports a [`StoragePlugin`] as a vcon-host storage plugin: place once in the plugin crate's
/// `lib.rs`, with `crate-type = ["cdylib"]` in its `Cargo.toml`.
///
/// It emits the library header the host's loader looks for, under abi_stable's well-known symbol
/// name, and refuses to compile a plugin built with `panic = "abort"` (its panics could not be
/// caught, so one would end the host).
#[macro_export]
macro_rules! export_storage_plugin {
    ($plugin:ty) => {
        #[cfg(panic = "abort")]
        compile_error!(
            "vcon-host storage plugins must be built with panic = \"unwind\" so a panic becomes an \
             error instead of ending the host: remove `panic = \"abort\"` from the profile"
        );

        /// The abi_stable library header the vcon-host loader reads.
        #[doc(hidden)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader =
            $crate::__private::lib_header::<$plugin>();
    };
}
