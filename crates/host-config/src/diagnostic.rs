//! Errors and warnings that point at a place in `config.yml`: `FILE:LINE: key: message`.

use std::fmt;
use std::path::PathBuf;

/// One problem or warning, located by file, line and dotted key (`chains.main.storages[1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file.
    pub file: PathBuf,
    /// The 1-based line, or 0 when the problem concerns the whole file.
    pub line: usize,
    /// The dotted key the problem is about (empty for the file itself).
    pub key: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem that keeps a config from loading, reported together so one edit fixes all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
