//! Errors of loading a plugin and of calling one.

use std::path::PathBuf;
use std::time::Duration;

use plugin_abi::{ErrorKind, PluginError};

/// Why a plugin file was refused. Each message names the file, what was expected and what was
/// found, and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file does not exist.
    #[error("plugin file {path} does not exist: check the path, or build the first-party plugins with `cargo xtask build-plugins`")]
    Missing {
        /// The path that was asked for.
        path: PathBuf,
    },

    /// The file could not be read (for the checksum or the symbol check).
    #[error("cannot read plugin file {path}: {source}")]
    Unreadable {
        /// The plugin file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The file's sha256 differs from the pin in the config.
    #[error("plugin file {path} has sha256 {found}, but the config pins sha256:{expected}: the file changed; verify it and update the pin")]
    ChecksumMismatch {
        /// The plugin file.
        path: PathBuf,
        /// The pinned digest (hex).
        expected: String,
        /// The file's digest (hex).
        found: String,
    },

    /// The file is not a plugin (not a shared library for this machine, or no root module).
    #[error("{path} is not a vcon-host plugin: {reason}")]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },

    /// The dynamic loader refused the file.
    #[error("cannot load plugin {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },

    /// An abi_stable library of another abi_stable major.
    #[error("{path} was built with an abi_stable version other than 0.11 ({found}): rebuild it against plugin-sdk {}.x", plugin_abi::ABI_VERSION_MAJOR)]
    ForeignAbiStable {
        /// The file.
        path: PathBuf,
        /// The header found.
        found: String,
    },

    /// An abi_stable library that is some other program's plugin.
    #[error("{path} is an abi_stable library, but it exports root module '{name}' (version {version}), not a vcon-host storage plugin ('{}')", plugin_abi::ROOT_MODULE_NAME)]
    ForeignRootModule {
        /// The file.
        path: PathBuf,
        /// The root module's name.
        name: String,
        /// Its version string.
        version: String,
    },

    /// A plugin built against another ABI major.
    #[error("{path} was built for plugin ABI {found}, but this host speaks ABI {}.x: rebuild the plugin against plugin-sdk {}.x", plugin_abi::ABI_VERSION_MAJOR, plugin_abi::ABI_VERSION_MAJOR)]
    AbiMajorMismatch {
        /// The file.
        path: PathBuf,
        /// The ABI version it was built for.
        found: String,
    },

    /// The plugin's types do not match this host's: it was built against a modified ABI.
    #[error("{path} claims plugin ABI {version}, but its types do not match this host's ({summary}): rebuild it against the released plugin-sdk {version}")]
    LayoutMismatch {
        /// The file.
        path: PathBuf,
        /// The ABI version it claims.
        version: String,
        /// The first mismatch abi_stable reported.
        summary: String,
        /// abi_stable's full report (long), for `--verbose`.
        detail: String,
    },

    /// The plugin's root-module constructor failed or panicked.
    #[error("plugin {path} failed to initialise: {reason}")]
    Initialisation {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The plugin's name is not the one the config asks for.
    #[error("{path} is plugin '{found}', but the config asks for storage.{expected}: point the config at the right file or module")]
    NameMismatch {
        /// The file.
        path: PathBuf,
        /// The name the config asked for.
        expected: String,
        /// The plugin's own name.
        found: String,
    },

    /// No file for the plugin on the search path.
    #[error("no plugin named '{name}' on the plugin search path ({}); plugins found: {}; build the first-party plugins with `cargo xtask build-plugins`, add a directory with --plugin-dir or VCON_PLUGIN_PATH, or name the file with `plugin: PATH`",
        display_paths(searched), display_found(found))]
    NotOnSearchPath {
        /// The plugin name asked for.
        name: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
        /// The plugin names whose files were found there.
        found: Vec<String>,
    },

    /// `open(options)` failed.
    #[error("plugin {plugin} refused its options: {error}")]
    OpenFailed {
        /// The plugin's name.
        plugin: String,
        /// The plugin's error.
        error: CallError,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no directories".to_owned();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn display_found(found: &[String]) -> String {
    if found.is_empty() {
        "none".to_owned()
    } else {
        found.join(", ")
    }
}

/// An error answered by a plugin call, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct CallError {
    /// The kind, with unknown codes from newer plugins mapped to `INTERNAL`.
    pub kind: ErrorKind,
    /// The plugin's message.
    pub message: String,
    /// The plugin's retry hint.
    pub retry_after: Option<Duration>,
}

impl CallError {
    /// A host-side error (a call the host refused to make, a broken answer).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Whether the host's retry policy may try again.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl From<PluginError> for CallError {
    fn from(err: PluginError) -> Self {
        Self {
            kind: err.kind.normalized(),
            message: err.message.into_string(),
            retry_after: (err.retry_after_ms > 0)
                .then(|| Duration::from_millis(err.retry_after_ms)),
        }
    }
}
