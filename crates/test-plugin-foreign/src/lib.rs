//! Test fixture: a library that is an abi_stable plugin named `vcon_storage`, but not one this
//! host can use.
//!
//! With feature `abi-v2` it claims ABI 2.0.0 (the loader must refuse it on the major version,
//! before any layout check). With `layout-mismatch` it claims 1.0.0 but its root module has
//! another shape (the loader must refuse it on the layout check, in one readable line). With
//! `other-program` it is some other application's abi_stable plugin.
#![allow(
    unsafe_code,
    missing_docs,
    non_camel_case_types,
    non_local_definitions,
    unreachable_pub,
    missing_debug_implementations
)]

use abi_stable::library::RootModule;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::RString;
use abi_stable::{export_root_module, StableAbi};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = ForeignPluginRef)))]
#[sabi(missing_field(panic))]
pub struct ForeignPlugin {
    /// In the real ABI this is a `u32`; here a `u64`, so the layouts differ.
    pub abi_version: u64,
    #[sabi(last_prefix_field)]
    pub info: extern "C" fn() -> RString,
}

impl RootModule for ForeignPluginRef {
    abi_stable::declare_root_module_statics! {ForeignPluginRef}
    const BASE_NAME: &'static str = NAME;
    const NAME: &'static str = NAME;
    const VERSION_STRINGS: VersionStrings = if cfg!(feature = "abi-v2") {
        VersionStrings::new("2.0.0")
    } else {
        VersionStrings::new("1.0.0")
    };
}

/// Another program's plugin exports its own root-module name.
const NAME: &str = if cfg!(feature = "other-program") {
    "image_filter"
} else {
    "vcon_storage"
};

extern "C" fn info() -> RString {
    "foreign".into()
}

#[export_root_module]
pub fn root() -> ForeignPluginRef {
    ForeignPlugin {
        abi_version: 2 << 16,
        info,
    }
    .leak_into_prefix()
}
