//! Test fixture: a storage plugin that misbehaves on demand, so the host's defences are tested
//! against a real `.so` rather than assumed.
//!
//! `options.on_save` picks what `save` does: `ok` (stores nothing, succeeds), `panic`, `abort`,
//! `segfault` or `exit`. `options.log` makes `open` emit a `tracing` event with that message, to
//! test that plugin logs reach the host. Never shipped: built by `cargo xtask test` into
//! `target/test-plugins/`.

use plugin_sdk::{
    export_storage_plugin, Capabilities, OpenContext, Storage, StorageError, StoragePlugin,
    VconRecord,
};

/// What `save` does.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSave {
    /// Succeed.
    #[default]
    Ok,
    /// Panic (the SDK must turn this into an INTERNAL error).
    Panic,
    /// `std::process::abort()` (only a child process survives this).
    Abort,
    /// Write through a null pointer.
    Segfault,
    /// `std::process::exit(3)`.
    Exit,
}

/// Options of the misbehaving plugin.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// What `save` does.
    pub on_save: OnSave,
    /// A message to log at INFO from `open`.
    pub log: Option<String>,
}

/// The misbehaving storage.
#[derive(Debug)]
pub struct Misbehaving {
    on_save: OnSave,
}

impl Storage for Misbehaving {
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> {
        match self.on_save {
            OnSave::Ok => Ok(()),
            OnSave::Panic => panic!("deliberate panic while saving {}", record.uuid),
            OnSave::Abort => std::process::abort(),
            OnSave::Segfault => {
                // SAFETY: not safe at all: this fixture exists to crash, so the host's child
                // process isolation is tested against a real invalid memory access (a `raise`
                // would be swallowed once by std's stack-overflow handler).
                #[allow(unsafe_code)]
                unsafe {
                    std::ptr::write_volatile(std::ptr::without_provenance_mut::<u8>(8), 1);
                }
                Ok(())
            }
            OnSave::Exit => std::process::exit(3),
        }
    }
}

impl StoragePlugin for Misbehaving {
    type Options = Options;
    const NAME: &'static str = "misbehaving";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "test fixture that panics or crashes on demand";
    const CAPABILITIES: Capabilities = Capabilities::NONE;

    fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> {
        if let Some(message) = options.log {
            tracing::info!(answer = 42, "{message}");
        }
        Ok(Self {
            on_save: options.on_save,
        })
    }
}

export_storage_plugin!(Misbehaving);
