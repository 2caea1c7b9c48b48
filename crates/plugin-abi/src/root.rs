//! The root module every plugin exports, and the ABI version.

use abi_stable::library::RootModule;
use abi_stable::std_types::{RResult, RStr, RString};
use abi_stable::{package_version_strings, sabi_types::VersionStrings, StableAbi};

use crate::{Capabilities, HostCallbacksRef, PluginError, PluginStorageBox};

/// The name every vcon-host storage plugin's root module carries, readable from a library's
/// header before any layout check, so the loader can say "this is an abi_stable library, but not
/// a vcon-host plugin".
pub const ROOT_MODULE_NAME: &str = "vcon_storage";

/// This crate's version, which is the ABI version.
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The ABI major: a plugin with another major is refused.
pub const ABI_VERSION_MAJOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MAJOR"));

/// The ABI minor: it selects the frozen interface a plugin was built against.
pub const ABI_VERSION_MINOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MINOR"));

const fn parse_u32(digits: &str) -> u32 {
    let bytes = digits.as_bytes();
    let mut value = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}

/// What a plugin says about itself, answered without opening a storage.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginInfo {
    /// The plugin's name: `module: storage.NAME` in `config.yml` must name it.
    pub name: RString,
    /// The plugin's own version (its crate version).
    pub version: RString,
    /// The ABI version the plugin was built against (this crate's version at its build).
    pub abi_version: RString,
    /// The version of `plugin-sdk` it was built with.
    pub sdk_version: RString,
    /// One line saying what the plugin stores into.
    pub description: RString,
    /// The operations it supports beyond `save`.
    pub capabilities: Capabilities,
    /// Its options with their defaults, as a JSON object, for `plugins list` and docs.
    pub option_defaults_json: RString,
    /// The target triple and profile it was built for, to explain a crash or a mismatch.
    pub build: RString,
}

/// The root module: the three entry points a plugin exports. Frozen at ABI 1.0.
///
/// It is a prefix type, but nothing will ever be appended: growth happens in [`PluginStorage`]
/// (crate::PluginStorage) or its `call` hatch, so old plugins keep loading.
#[repr(C)]
#[derive(StableAbi, Debug)]
#[sabi(kind(Prefix(prefix_ref = StoragePluginRef)))]
#[sabi(missing_field(panic))]
pub struct StoragePlugin {
    /// `ABI_VERSION_MAJOR << 16 | ABI_VERSION_MINOR` of the ABI the plugin was built against.
    pub abi_version: u32,
    /// Describes the plugin without opening anything.
    pub info: extern "C" fn() -> PluginInfo,
    /// Opens one storage instance from its `options:` map (as a JSON object). Called once per
    /// configured storage: two storages on one plugin are two independent instances.
    #[sabi(last_prefix_field)]
    pub open: extern "C" fn(
        options_json: RStr<'_>,
        host: HostCallbacksRef,
    ) -> RResult<PluginStorageBox, PluginError>,
}

impl StoragePlugin {
    /// The value of [`StoragePlugin::abi_version`] for this crate's version.
    pub const PACKED_ABI_VERSION: u32 = ABI_VERSION_MAJOR << 16 | ABI_VERSION_MINOR;
}

impl RootModule for StoragePluginRef {
    abi_stable::declare_root_module_statics! {StoragePluginRef}
    const BASE_NAME: &'static str = ROOT_MODULE_NAME;
    const NAME: &'static str = ROOT_MODULE_NAME;
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

impl std::fmt::Debug for StoragePluginRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoragePluginRef")
            .field("abi_version", &self.abi_version())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_the_crate() {
        assert_eq!(
            format!("{ABI_VERSION_MAJOR}.{ABI_VERSION_MINOR}.0"),
            ABI_VERSION
        );
        assert_eq!(StoragePlugin::PACKED_ABI_VERSION, 1 << 16);
    }
}
