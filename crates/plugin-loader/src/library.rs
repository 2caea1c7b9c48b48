//! Loading one plugin file, once per process, through every check in the load order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use object::{Object, ObjectSymbol};
use plugin_abi::__private::abi_stable::library::{
    lib_header_from_raw_library, LibraryError, RawLibrary, RootModuleError,
};
use plugin_abi::{Capabilities, StoragePluginRef, ABI_VERSION_MAJOR, ROOT_MODULE_NAME};
use sha2::{Digest, Sha256};

use crate::{CallError, LoadError, StorageInstance};

/// The symbol abi_stable's `LibHeader` is exported under in every plugin.
const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// A `sha256:` pin from the config: the hex digest a plugin file must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Pin(String);

impl Sha256Pin {
    /// Parses `sha256:HEX` or bare `HEX` (64 hex digits, any case).
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text).trim();
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(hex.to_ascii_lowercase()))
        } else {
            Err(format!(
                "`{text}` is not a sha256 pin: expected `sha256:` and 64 hex digits"
            ))
        }
    }

    /// The digest in lowercase hex.
    pub fn hex(&self) -> &str {
        &self.0
    }
}

/// What a plugin says about itself, in std types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginMeta {
    /// The name `module: storage.NAME` refers to.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The ABI version it was built against.
    pub abi_version: String,
    /// The SDK version it was built with.
    pub sdk_version: String,
    /// What it stores into.
    pub description: String,
    /// Its declared capabilities.
    pub capabilities: Capabilities,
    /// Its options with their defaults (a JSON object).
    pub option_defaults: serde_json::Value,
    /// Its build target and profile.
    pub build: String,
}

/// A loaded plugin library. Never unloaded, hence `'static`.
#[derive(Debug)]
pub struct PluginLibrary {
    path: PathBuf,
    root: StoragePluginRef,
    meta: PluginMeta,
}

/// Every library loaded in this process, by canonical path: loading the same file twice gives the
/// same library (and `dlopen` would give the same handle anyway).
fn registry() -> &'static Mutex<HashMap<PathBuf, &'static PluginLibrary>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, &'static PluginLibrary>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl PluginLibrary {
    /// Loads the plugin at `path`, checking it in the documented order (see the crate docs).
    pub fn load(path: &Path, pin: Option<&Sha256Pin>) -> Result<&'static Self, LoadError> {
        if !path.exists() {
            return Err(LoadError::Missing {
                path: path.to_owned(),
            });
        }
        let canonical = path
            .canonicalize()
            .map_err(|source| LoadError::Unreadable {
                path: path.to_owned(),
                source,
            })?;
        // The pin is checked even when the library is already loaded: the config may pin a
        // file that another storage loaded unpinned, and the file may have changed on disk.
        if let Some(pin) = pin {
            check_pin(&canonical, pin)?;
        }
        let mut loaded = registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(library) = loaded.get(&canonical) {
            return Ok(library);
        }
        check_symbols(&canonical)?;
        let library: &'static Self = Box::leak(Box::new(Self::load_unchecked(&canonical)?));
        tracing::debug!(
            path = %canonical.display(),
            plugin = %library.meta.name,
            version = %library.meta.version,
            abi = %library.meta.abi_version,
            "loaded storage plugin"
        );
        loaded.insert(canonical, library);
        Ok(library)
    }

    fn load_unchecked(path: &Path) -> Result<Self, LoadError> {
        let raw = RawLibrary::load_at(path).map_err(|err| LoadError::Open {
            path: path.to_owned(),
            reason: one_line(&err.to_string()),
        })?;
        // SAFETY: `raw` is leaked just below and so outlives the `'static` header; the symbol
        // was checked to exist, and abi_stable checks its magic string before trusting it.
        #[allow(unsafe_code)]
        let header = unsafe { lib_header_from_raw_library(&raw) };
        // Never unload: code from the library may be referenced for the rest of the process.
        std::mem::forget(raw);
        let header = header.map_err(|err| match err {
            LibraryError::InvalidAbiHeader(found) => LoadError::ForeignAbiStable {
                path: path.to_owned(),
                found: format!("{found:?}"),
            },
            other => LoadError::NotAPlugin {
                path: path.to_owned(),
                reason: one_line(&other.to_string()),
            },
        })?;

        let consts = header.root_mod_consts();
        let name = consts.name().as_str();
        let version = header.version_strings().version.as_str();
        if name != ROOT_MODULE_NAME {
            return Err(LoadError::ForeignRootModule {
                path: path.to_owned(),
                name: name.to_owned(),
                version: version.to_owned(),
            });
        }
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok());
        if major != Some(ABI_VERSION_MAJOR) {
            return Err(LoadError::AbiMajorMismatch {
                path: path.to_owned(),
                found: version.to_owned(),
            });
        }
        // Only one interface exists so far (ABI 1.0). When 1.1 ships, the minor parsed here picks
        // the frozen `v1_N` interface to check against.
        let root = header
            .init_root_module::<StoragePluginRef>()
            .map_err(|err| classify_init_error(path, version, err))?;
        let meta = read_meta(root);
        Ok(Self {
            path: path.to_owned(),
            root,
            meta,
        })
    }

    /// The canonical path it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the plugin says about itself.
    pub fn meta(&self) -> &PluginMeta {
        &self.meta
    }

    /// Refuses the plugin when its name is not `expected` (the `NAME` of `module: storage.NAME`).
    pub fn expect_name(&self, expected: &str) -> Result<(), LoadError> {
        if self.meta.name == expected {
            Ok(())
        } else {
            Err(LoadError::NameMismatch {
                path: self.path.clone(),
                expected: expected.to_owned(),
                found: self.meta.name.clone(),
            })
        }
    }

    /// Opens a storage instance with `options_json` (the storage's `options:` as a JSON object).
    /// Each call opens an independent instance.
    pub fn open(&'static self, options_json: &str) -> Result<StorageInstance, LoadError> {
        let open = self.root.open();
        match open(options_json.into(), crate::host_callbacks()) {
            plugin_abi::__private::RResult::ROk(storage) => Ok(StorageInstance::new(self, storage)),
            plugin_abi::__private::RResult::RErr(err) => Err(LoadError::OpenFailed {
                plugin: self.meta.name.clone(),
                error: CallError::from(err),
            }),
        }
    }
}

fn read_meta(root: StoragePluginRef) -> PluginMeta {
    let info = (root.info())();
    PluginMeta {
        name: info.name.into_string(),
        version: info.version.into_string(),
        abi_version: info.abi_version.into_string(),
        sdk_version: info.sdk_version.into_string(),
        description: info.description.into_string(),
        capabilities: info.capabilities,
        option_defaults: serde_json::from_str(info.option_defaults_json.as_str())
            .unwrap_or(serde_json::Value::Null),
        build: info.build.into_string(),
    }
}

fn check_pin(path: &Path, pin: &Sha256Pin) -> Result<(), LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let found = hex(&Sha256::digest(&bytes));
    if found == pin.hex() {
        Ok(())
    } else {
        Err(LoadError::ChecksumMismatch {
            path: path.to_owned(),
            expected: pin.hex().to_owned(),
            found,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the file as an object file and checks it is a shared library for this machine that
/// exports the root-module symbol, all without running any of its code.
fn check_symbols(path: &Path) -> Result<(), LoadError> {
    let not_a_plugin = |reason: String| LoadError::NotAPlugin {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| LoadError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let file = object::File::parse(&*bytes).map_err(|err| {
        not_a_plugin(format!(
            "it is not a shared library ({err}); expected a {} cdylib built with plugin-sdk",
            std::env::consts::DLL_EXTENSION
        ))
    })?;
    let arch = format!("{:?}", file.architecture()).to_ascii_lowercase();
    let host_arch = std::env::consts::ARCH.replace('_', "");
    if !arch.replace('_', "").starts_with(&host_arch) {
        return Err(not_a_plugin(format!(
            "it is built for {arch}, but this host runs on {}",
            std::env::consts::ARCH
        )));
    }
    // Mach-O prefixes C symbols with an underscore; ELF does not.
    let wanted = ROOT_SYMBOL.trim_start_matches('_');
    let exported = file.dynamic_symbols().any(|symbol| {
        !symbol.is_undefined() && symbol.name().map(|n| n.trim_start_matches('_')) == Ok(wanted)
    }) || file.exports().is_ok_and(|exports| {
        exports
            .iter()
            .any(|e| e.name().strip_prefix(b"_").unwrap_or(e.name()) == wanted.as_bytes())
    });
    if exported {
        Ok(())
    } else {
        Err(not_a_plugin(
            "it exports no abi_stable root module (a system library, or a cdylib without \
             `export_storage_plugin!`)"
                .to_owned(),
        ))
    }
}

fn classify_init_error(path: &Path, version: &str, err: LibraryError) -> LoadError {
    match err {
        LibraryError::AbiInstability(detail) => {
            let detail = detail.to_string();
            LoadError::LayoutMismatch {
                path: path.to_owned(),
                version: version.to_owned(),
                summary: summarise_layout_error(&detail),
                detail,
            }
        }
        LibraryError::IncompatibleVersionNumber { actual_version, .. } => {
            LoadError::AbiMajorMismatch {
                path: path.to_owned(),
                found: actual_version.to_string(),
            }
        }
        LibraryError::RootModule { err, .. } => LoadError::Initialisation {
            path: path.to_owned(),
            reason: match err {
                RootModuleError::Unwound => "its root module panicked while loading".to_owned(),
                other => one_line(&other.to_string()),
            },
        },
        other => LoadError::Initialisation {
            path: path.to_owned(),
            reason: one_line(&other.to_string()),
        },
    }
}

/// abi_stable's layout report runs to hundreds of lines; keep the first error and what was
/// expected and found.
fn summarise_layout_error(detail: &str) -> String {
    let lines: Vec<&str> = detail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(start) = lines.iter().position(|l| l.starts_with("Error:")) else {
        return one_line(detail);
    };
    let mut summary = lines[start].trim_start_matches("Error:").trim().to_owned();
    // "Expected:" and "Found:" are followed by the value on their own line.
    for (label, word) in [("Expected:", "expected"), ("Found:", "found")] {
        if let Some(i) = lines[start..].iter().position(|l| l.starts_with(label)) {
            let inline = lines[start + i].trim_start_matches(label).trim();
            let value = if inline.is_empty() {
                lines.get(start + i + 1).copied().unwrap_or_default()
            } else {
                inline
            };
            summary.push_str(&format!(", {word} {}", one_line(value)));
        }
    }
    summary
}

fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|i| joined.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &joined[..cut])
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_with_or_without_prefix() {
        let hex = "ab".repeat(32);
        assert_eq!(
            Sha256Pin::parse(&format!("sha256:{hex}")).unwrap().hex(),
            hex
        );
        assert_eq!(Sha256Pin::parse(&hex.to_uppercase()).unwrap().hex(), hex);
        assert!(Sha256Pin::parse("sha256:abc").is_err());
    }

    #[test]
    fn layout_reports_are_summarised() {
        let detail = "lots\nof\nlayout\n Error:mismatched type\n  Expected:\n u64\n Found:\n u32\n";
        assert_eq!(
            summarise_layout_error(detail),
            "mismatched type, expected u64, found u32"
        );
    }
}
