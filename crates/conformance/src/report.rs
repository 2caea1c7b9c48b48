//! The outcome of a conformance run, printable for a person and assertable in a test.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use plugin_loader::PluginMeta;

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The plugin honours this part of the contract.
    Passed,
    /// It does not; the message says what was expected and what happened.
    Failed(String),
    /// Not applicable (an undeclared capability) or not allowed (a destructive check).
    Skipped(String),
}

/// One check's name, outcome and duration.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The check's name (see [`crate::checks`]).
    pub name: &'static str,
    /// How it ended.
    pub outcome: CheckOutcome,
    /// How long it took.
    pub duration: Duration,
}

impl CheckResult {
    pub(crate) fn failed(name: &'static str, message: String) -> Self {
        Self {
            name,
            outcome: CheckOutcome::Failed(message),
            duration: Duration::ZERO,
        }
    }
}

/// The results of a run.
#[derive(Debug, Clone)]
pub struct Report {
    path: PathBuf,
    plugin: Option<PluginMeta>,
    results: Vec<CheckResult>,
}

impl Report {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            plugin: None,
            results: Vec::new(),
        }
    }

    pub(crate) fn set_plugin(&mut self, meta: PluginMeta) {
        self.plugin = Some(meta);
    }

    pub(crate) fn push(&mut self, result: CheckResult) {
        self.results.push(result);
    }

    /// Every check's result, in the order run.
    pub fn results(&self) -> &[CheckResult] {
        &self.results
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, CheckOutcome::Failed(_)))
    }

    /// Whether no check failed (and at least one ran).
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
            && self
                .results
                .iter()
                .any(|r| r.outcome == CheckOutcome::Passed)
    }

    /// Panics with the whole report unless every check passed: for use in tests.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.passed(), "conformance failed:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plugin {
            Some(meta) => writeln!(
                f,
                "plugin {} {} (ABI {}, capabilities {}) from {}",
                meta.name,
                meta.version,
                meta.abi_version,
                meta.capabilities,
                self.path.display()
            )?,
            None => writeln!(f, "plugin file {}", self.path.display())?,
        }
        for result in &self.results {
            let ms = result.duration.as_secs_f64() * 1e3;
            match &result.outcome {
                CheckOutcome::Passed => writeln!(f, "  pass  {:<38} {ms:>9.1} ms", result.name)?,
                CheckOutcome::Skipped(why) => {
                    writeln!(f, "  skip  {:<38} {why}", result.name)?;
                }
                CheckOutcome::Failed(why) => writeln!(f, "  FAIL  {:<38} {why}", result.name)?,
            }
        }
        let failed = self.failures().count();
        let passed = self
            .results
            .iter()
            .filter(|r| r.outcome == CheckOutcome::Passed)
            .count();
        let skipped = self.results.len() - failed - passed;
        write!(f, "{passed} passed, {failed} failed, {skipped} skipped")
    }
}
