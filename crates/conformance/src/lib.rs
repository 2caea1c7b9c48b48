//! The storage contract of `vcon-host`, as a suite that runs against any plugin file.
//!
//! Every first-party plugin's tests run it through the real loader, `vcon-host plugins check
//! FILE` runs it for anyone, and a third-party author can call it from their own tests:
//!
//! ```no_run
//! let report = conformance::Suite::new("target/release/libvcon_storage_mine.so")
//!     .options(serde_json::json!({ "path": "/tmp/somewhere" }))
//!     .destructive(true) // allow `clear` and `provision {recreate}` on this fresh location
//!     .run();
//! report.assert_passed();
//! ```
//!
//! What it checks (see [`checks`] for each one's exact rules): save/get round-trips equal
//! JSON; saves are upserts; a missing uuid reads as `None`; delete and exists semantics; batches
//! answer one result per item in order; capability honesty both ways (declared operations work,
//! undeclared ones answer `UNSUPPORTED`); listing and counting; many threads saving at once;
//! large documents (a 270 KB call and a 10 MB document); awkward text (SQL in the subject,
//! unicode, escapes).
//!
//! Documents are generated, with fresh random uuids per run, so the suite needs no data files
//! and never collides with what a storage already holds.

pub mod checks;
mod documents;
mod report;
pub mod test_data;

pub use documents::{fresh_uuid, Document};
pub use report::{CheckOutcome, CheckResult, Report};

use std::path::{Path, PathBuf};

use plugin_loader::PluginLibrary;

/// A conformance run against one plugin file with one set of options.
#[derive(Debug, Clone)]
pub struct Suite {
    path: PathBuf,
    options: serde_json::Value,
    destructive: bool,
    large_bytes: usize,
}

impl Suite {
    /// A suite for the plugin at `path`, with empty options.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
            options: serde_json::json!({}),
            destructive: false,
            large_bytes: 10_000_000,
        }
    }

    /// The storage's `options:` (a JSON object).
    pub fn options(mut self, options: serde_json::Value) -> Self {
        self.options = options;
        self
    }

    /// Allows the checks that remove everything (`clear`, `provision {recreate}`). Only for a
    /// location that holds nothing of value; off by default.
    pub fn destructive(mut self, allow: bool) -> Self {
        self.destructive = allow;
        self
    }

    /// The size of the largest document tried (10 MB by default).
    pub fn large_document_bytes(mut self, bytes: usize) -> Self {
        self.large_bytes = bytes;
        self
    }

    /// Loads the plugin, opens a storage, and runs every check. A plugin that does not load or
    /// open is reported as a failed `load` check rather than a panic.
    pub fn run(&self) -> Report {
        self.run_with_progress(&mut |_| {})
    }

    /// [`Suite::run`], announcing each check's name before it starts: a checker running the
    /// suite in a child process uses it to say which check a crashing plugin died in.
    pub fn run_with_progress(&self, progress: &mut dyn FnMut(&str)) -> Report {
        let mut report = Report::new(self.path.clone());
        progress("load");
        let library = match PluginLibrary::load(&self.path, None) {
            Ok(library) => library,
            Err(err) => {
                report.push(CheckResult::failed("load", err.to_string()));
                return report;
            }
        };
        report.set_plugin(library.meta().clone());
        progress("open");
        let storage = match library.open(&self.options.to_string()) {
            Ok(storage) => storage,
            Err(err) => {
                report.push(CheckResult::failed("open", err.to_string()));
                return report;
            }
        };
        let context = checks::Context {
            storage: &storage,
            destructive: self.destructive,
            large_bytes: self.large_bytes,
        };
        for check in checks::ALL {
            progress(check.0);
            report.push(checks::run_one(check, &context));
        }
        if let Err(err) = storage.close() {
            report.push(CheckResult::failed("close", err.to_string()));
        }
        report
    }
}
