//! The bridge from a safe [`StoragePlugin`] to the stable ABI: the root module, the trait-object
//! adapter, and the panic guard around every entry point.
//!
//! This is one of the three places in the workspace with `unsafe` (with `plugin-abi` and the
//! host's loader): building the library header abi_stable's loader looks for.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use plugin_abi::__private::{
    __call_root_module_loader, CheckTypeLayout, LibHeader, RResult, RSlice, RStr, RString, RVec,
    TD_Opaque,
};
use plugin_abi::__private::{ROption, RootModuleResult};
use plugin_abi::{
    Capabilities, HostCallbacksRef, PluginError, PluginInfo, PluginStorage, PluginStorageBox,
    PluginStorage_TO, StoragePlugin as RootModule, StoragePluginRef,
};

use crate::storage::ProvisionRequest;
use crate::{ListRequest, OpenContext, PartyQuery, StorageError, StoragePlugin, VconRecord};

/// The library header for plugin `P`, as the `export_storage_plugin!` macro places it under
/// abi_stable's well-known symbol name.
///
/// Written out here rather than with abi_stable's `#[export_root_module]` attribute because that
/// attribute expands to `::abi_stable::...` paths, which would force every plugin to depend on
/// abi_stable directly.
pub const fn lib_header<P: StoragePlugin>() -> LibHeader {
    // SAFETY: `erased_root::<P>` returns the root module of type `StoragePluginRef`, the type
    // whose constants (name, version strings, layout) we pass; abi_stable's loader checks the
    // layout against the host's before the constructor runs.
    #[allow(unsafe_code)]
    unsafe {
        LibHeader::from_constructor::<StoragePluginRef>(erased_root::<P>, CheckTypeLayout::Yes)
    }
}

extern "C" fn erased_root<P: StoragePlugin>() -> RootModuleResult {
    __call_root_module_loader(root_module::<P>)
}

fn root_module<P: StoragePlugin>() -> StoragePluginRef {
    use plugin_abi::__private::abi_stable::prefix_type::PrefixTypeTrait;
    RootModule {
        abi_version: RootModule::PACKED_ABI_VERSION,
        info: info::<P>,
        open: open::<P>,
    }
    .leak_into_prefix()
}

extern "C" fn info<P: StoragePlugin>() -> PluginInfo {
    install_panic_hook();
    // Building the info cannot fail short of a bug in `option_defaults`; if that panics we still
    // answer, with empty defaults, rather than unwind into the host.
    let defaults = catch_unwind(P::option_defaults)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "{}".to_owned());
    PluginInfo {
        name: P::NAME.into(),
        version: P::VERSION.into(),
        abi_version: plugin_abi::ABI_VERSION.into(),
        sdk_version: crate::SDK_VERSION.into(),
        description: P::DESCRIPTION.into(),
        capabilities: P::CAPABILITIES,
        option_defaults_json: defaults.into(),
        build: build_description().into(),
    }
}

fn build_description() -> String {
    format!(
        "{}-{} {}",
        std::env::consts::ARCH,
        std::env::consts::OS,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    )
}

extern "C" fn open<P: StoragePlugin>(
    options_json: RStr<'_>,
    host: HostCallbacksRef,
) -> RResult<PluginStorageBox, PluginError> {
    install_panic_hook();
    crate::logging::install(host);
    guard(P::NAME, "open", || {
        let options = crate::parse_options::<P::Options>(options_json.as_str())?;
        let storage = P::open(options, &OpenContext::default())?;
        let capabilities = storage
            .instance_capabilities()
            .map_or(P::CAPABILITIES, |caps| caps.intersection(P::CAPABILITIES));
        let adapter = Adapter {
            inner: storage,
            capabilities,
        };
        Ok(PluginStorage_TO::from_value(adapter, TD_Opaque))
    })
}

/// A plugin's storage seen through the ABI's trait object.
struct Adapter<P> {
    inner: P,
    capabilities: Capabilities,
}

impl<P: StoragePlugin> PluginStorage for Adapter<P> {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn save(&self, record: plugin_abi::VconRecord<'_>) -> RResult<(), PluginError> {
        guard(P::NAME, "save", || {
            self.inner.save(&VconRecord::from_abi(&record))
        })
    }

    fn get(&self, uuid: RStr<'_>) -> RResult<ROption<RVec<u8>>, PluginError> {
        guard(P::NAME, "get", || {
            Ok(self.inner.get(uuid.as_str())?.map(RVec::from).into())
        })
    }

    fn delete(&self, uuid: RStr<'_>) -> RResult<bool, PluginError> {
        guard(P::NAME, "delete", || self.inner.delete(uuid.as_str()))
    }

    fn exists(&self, uuid: RStr<'_>) -> RResult<bool, PluginError> {
        guard(P::NAME, "exists", || self.inner.exists(uuid.as_str()))
    }

    fn save_many(
        &self,
        records: RSlice<'_, plugin_abi::VconRecord<'_>>,
    ) -> RResult<RVec<RResult<(), PluginError>>, PluginError> {
        guard(P::NAME, "save_many", || {
            let records: Vec<VconRecord<'_>> = records.iter().map(VconRecord::from_abi).collect();
            let results = self.inner.save_many(&records)?;
            if results.len() != records.len() {
                return Err(StorageError::internal(format!(
                    "save_many answered {} results for {} records",
                    results.len(),
                    records.len()
                )));
            }
            Ok(results
                .into_iter()
                .map(|r| r.map_err(StorageError::into_abi).into())
                .collect())
        })
    }

    fn get_many(
        &self,
        uuids: RSlice<'_, RStr<'_>>,
    ) -> RResult<RVec<ROption<RVec<u8>>>, PluginError> {
        guard(P::NAME, "get_many", || {
            let uuids: Vec<&str> = uuids.iter().map(RStr::as_str).collect();
            let docs = self.inner.get_many(&uuids)?;
            check_len("get_many", docs.len(), uuids.len())?;
            Ok(docs
                .into_iter()
                .map(|doc| doc.map(RVec::from).into())
                .collect())
        })
    }

    fn delete_many(&self, uuids: RSlice<'_, RStr<'_>>) -> RResult<RVec<bool>, PluginError> {
        guard(P::NAME, "delete_many", || {
            let uuids: Vec<&str> = uuids.iter().map(RStr::as_str).collect();
            let removed = self.inner.delete_many(&uuids)?;
            check_len("delete_many", removed.len(), uuids.len())?;
            Ok(removed.into())
        })
    }

    fn list(&self, request_json: RStr<'_>) -> RResult<RString, PluginError> {
        guard(P::NAME, "list", || {
            let request: ListRequest = decode_request("list", request_json.as_str())?;
            encode_answer(&self.inner.list(&request)?)
        })
    }

    fn query(&self, request_json: RStr<'_>) -> RResult<RString, PluginError> {
        guard(P::NAME, "query", || {
            let query: PartyQuery = decode_request("query", request_json.as_str())?;
            encode_answer(&self.inner.query(&query)?)
        })
    }

    fn count(&self) -> RResult<u64, PluginError> {
        guard(P::NAME, "count", || self.inner.count())
    }

    fn status(&self) -> RResult<RString, PluginError> {
        guard(P::NAME, "status", || encode_answer(&self.inner.status()?))
    }

    fn provision(&self, request_json: RStr<'_>) -> RResult<RString, PluginError> {
        guard(P::NAME, "provision", || {
            let request: ProvisionRequest = decode_request("provision", request_json.as_str())?;
            encode_answer(&self.inner.provision(&request)?)
        })
    }

    fn clear(&self) -> RResult<u64, PluginError> {
        guard(P::NAME, "clear", || self.inner.clear())
    }

    fn close(&self) -> RResult<(), PluginError> {
        guard(P::NAME, "close", || self.inner.close())
    }

    fn call(&self, op: RStr<'_>, payload_json: RSlice<'_, u8>) -> RResult<RVec<u8>, PluginError> {
        guard(P::NAME, "call", || {
            Ok(self
                .inner
                .call(op.as_str(), payload_json.as_slice())?
                .into())
        })
    }
}

fn check_len(op: &str, got: usize, want: usize) -> Result<(), StorageError> {
    if got == want {
        Ok(())
    } else {
        Err(StorageError::internal(format!(
            "{op} answered {got} results for {want} items"
        )))
    }
}

fn decode_request<T: serde::de::DeserializeOwned + Default>(
    op: &str,
    json: &str,
) -> Result<T, StorageError> {
    if json.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(json)
        .map_err(|err| StorageError::invalid_input(format!("malformed {op} request: {err}")))
}

fn encode_answer<T: serde::Serialize>(answer: &T) -> Result<RString, StorageError> {
    serde_json::to_string(answer)
        .map(RString::from)
        .map_err(|err| StorageError::internal(format!("cannot encode the answer: {err}")))
}

/// Runs one entry point, turning an error into the ABI's error and a panic into `INTERNAL`.
///
/// Without this, a panic reaching abi_stable's generated glue calls `process::exit(1)` and takes
/// the host down with the plugin.
fn guard<T>(
    plugin: &str,
    op: &str,
    body: impl FnOnce() -> Result<T, StorageError>,
) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(err)) => RResult::RErr(err.into_abi()),
        Err(payload) => {
            let detail = LAST_PANIC
                .with(|last| last.borrow_mut().take())
                .unwrap_or_else(|| panic_message(payload.as_ref()));
            tracing::error!(plugin, op, "plugin panicked: {detail}");
            RResult::RErr(
                StorageError::internal(format!("plugin {plugin} panicked in {op}: {detail}"))
                    .into_abi(),
            )
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned())
}

thread_local! {
    /// The message and location of the last panic on this thread, recorded by our hook so the
    /// error can say where it happened.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the plugin's own panic hook (this library has its own std, so this does not touch the
/// host's) with one that records the panic for [`guard`] instead of printing to stderr under an
/// unnamed thread.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = panic_message(info.payload());
            let detail = match info.location() {
                Some(loc) => format!("{message} at {}:{}", loc.file(), loc.line()),
                None => message,
            };
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(detail));
        }));
    });
}
