//! The stable ABI between `vcon-host` and its storage plugins.
//!
//! A storage plugin is a `cdylib` built separately from the host, possibly by a third party,
//! possibly months apart. This crate is the contract both sides compile against, and nothing
//! else: FFI-safe types, the root module every plugin exports, and the ABI version. It holds no
//! I/O and no logic, so it rarely changes; ergonomics live in `plugin-sdk` (what plugin
//! authors use) and policy (retries, dead letters, concurrency) in the host.
//!
//! It is built on [`abi_stable`] 0.11.3 (pinned), which checks the layout of every type reachable
//! from the root module when a plugin is loaded. Plugin authors never see it: `plugin-sdk`
//! re-exports nothing from it, so the mechanism can be replaced by rebuilding plugins, not by
//! rewriting them.
//!
//! # Evolution
//!
//! The interface here is ABI **1.0**. The root module ([`StoragePlugin`]) is frozen. Growth
//! happens by appending methods with default bodies to [`PluginStorage`] or through its
//! `call(op, json)` escape hatch. Before a 1.x bump the released interface is copied to a frozen
//! `v1_N` module so the host keeps loading older plugins (abi_stable alone refuses a plugin
//! built against an older minor). Removing or retyping anything is a 2.0.
//!
//! # What crosses the boundary
//!
//! - a vCon as borrowed JSON bytes plus the index fields the host already extracted
//!   ([`VconRecord`]); the bytes are stored verbatim, so unknown keys survive;
//! - errors as an open `u8` kind ([`ErrorKind`]) plus a message ([`PluginError`]);
//! - capabilities as a `u64` bitset ([`Capabilities`]);
//! - host services (logging, the clock) as a table of `extern "C"` callbacks
//!   ([`HostCallbacks`]).
#![allow(
    // abi_stable's derives generate `Foo_Ref` / `Foo_TO` names and impls in const blocks.
    non_camel_case_types,
    non_local_definitions,
    // The `#[sabi_trait]` macro generates many public helper items without docs.
    missing_docs,
    // `#[derive(StableAbi)]` and `#[sabi_trait]` expand to unsafe impls: this is the one crate
    // (with the SDK's export module and the host loader) where unsafe is expected.
    unsafe_code
)]

mod capabilities;
mod error;
mod host;
mod record;
mod root;
mod storage;

pub use capabilities::Capabilities;
pub use error::{ErrorKind, PluginError};
pub use host::{HostCallbacks, HostCallbacksRef, LogLevel};
pub use record::VconRecord;
pub use root::{
    PluginInfo, StoragePlugin, StoragePluginRef, ABI_VERSION, ABI_VERSION_MAJOR, ABI_VERSION_MINOR,
    ROOT_MODULE_NAME,
};
pub use storage::{PluginStorage, PluginStorageBox, PluginStorage_TO};

/// The parts of abi_stable the SDK's export macro and the host's loader need.
///
/// Re-exported so those two crates use exactly the pinned version this crate was built with.
/// Plugin authors never touch this: it is hidden from docs and not part of any promise.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
    pub use abi_stable::library::{
        __call_root_module_loader, CheckTypeLayout, LibHeader, RootModule, RootModuleResult,
    };
    pub use abi_stable::sabi_trait::TD_Opaque;
    pub use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec};
    pub use abi_stable::StableAbi;
}
