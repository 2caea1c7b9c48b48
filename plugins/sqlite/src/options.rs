//! The `options:` of a sqlite storage, and [`TableName`], the one piece of text that becomes part
//! of an SQL statement without being a parameter (SQL cannot bind an identifier), so it is
//! validated against a strict pattern and then quoted.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Where the database lives when `path` is not given: beside the default file storage's
/// directory, relative to the host's working directory, so the default config runs on a fresh
/// machine with no setup step.
pub const DEFAULT_PATH: &str = "./data/vcons.sqlite";

/// The table the Python server's `storage.postgres` writes, and so the default here.
pub const DEFAULT_TABLE: &str = "vcons";

/// The `options:` of a sqlite storage. Unknown keys are refused, so a misspelt option is an
/// error at start-up instead of a silent default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// The database file. Its directory is created when `create` is true.
    pub path: PathBuf,
    /// The table holding the vCons; a plain identifier (see [`TableName`]).
    pub table_name: String,
    /// How long a call waits for SQLite's lock (held by another process) and for a free
    /// connection of this storage, each, before answering `Unavailable` (which the host
    /// retries).
    pub busy_timeout_ms: u64,
    /// Read connections (the single write connection is extra). Reads run in parallel with each
    /// other and with the writer (WAL).
    pub pool_size: u32,
    /// How hard each commit is pushed to disk.
    pub synchronous: Synchronous,
    /// Create the file, its directory and the table when missing (running the migrations at
    /// open). With `false`, the file must exist and the schema is managed with `provision`.
    pub create: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            path: PathBuf::from(DEFAULT_PATH),
            table_name: DEFAULT_TABLE.to_owned(),
            busy_timeout_ms: 5000,
            pool_size: 4,
            synchronous: Synchronous::Normal,
            create: true,
        }
    }
}

/// The largest `pool_size`: more readers than this only adds file handles, since the host
/// bounds the calls in flight per storage anyway.
pub const MAX_POOL_SIZE: u32 = 64;

impl Options {
    /// Checks what serde cannot: a usable path, a safe table name, sane sizes. Called once at
    /// open, so a mistake is reported at start-up with the option's name, not with the first
    /// vCon.
    pub fn check(&self) -> Result<TableName, String> {
        let path = self.path.to_string_lossy();
        if path.is_empty() {
            return Err(
                "invalid option path: it is empty; name the database file, e.g. ./data/vcons.sqlite"
                    .to_owned(),
            );
        }
        if path == ":memory:" || path.starts_with("file:") {
            return Err(format!(
                "invalid option path {path:?}: name a database file; in-memory databases and URI \
                 file names are not supported (use the memory storage plugin for an in-process \
                 store)"
            ));
        }
        if self.pool_size == 0 || self.pool_size > MAX_POOL_SIZE {
            return Err(format!(
                "invalid option pool_size {}: the number of read connections must be between 1 \
                 and {MAX_POOL_SIZE}",
                self.pool_size
            ));
        }
        if self.busy_timeout_ms > i32::MAX as u64 {
            return Err(format!(
                "invalid option busy_timeout_ms {}: at most {} milliseconds",
                self.busy_timeout_ms,
                i32::MAX
            ));
        }
        TableName::new(&self.table_name)
    }

    /// `busy_timeout_ms` as a duration.
    pub fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }
}

/// SQLite's `PRAGMA synchronous` in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Commits are durable once the WAL is synced at a checkpoint: a power cut may lose the
    /// last commits but never corrupts the file. The usual choice with WAL, and much faster.
    #[default]
    #[serde(alias = "NORMAL")]
    Normal,
    /// Every commit syncs the WAL: durable across a power cut, at the cost of an fsync per
    /// commit (a batch is one commit).
    #[serde(alias = "FULL")]
    Full,
}

impl Synchronous {
    /// The pragma's value.
    pub fn as_sql(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

impl fmt::Display for Synchronous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Normal => "normal",
            Self::Full => "full",
        })
    }
}

/// A validated table name: `^[A-Za-z_][A-Za-z0-9_]{0,62}$`, not starting with `sqlite_`
/// (SQLite reserves those). It is the only text ever interpolated into SQL, and it is also
/// double-quoted there, so it can never be read as anything but a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl TableName {
    /// The longest accepted name (PostgreSQL's identifier limit, so a name that works here
    /// works in the postgres plugin too).
    pub const MAX_LEN: usize = 63;

    /// Validates `name`, explaining the rule when it is refused.
    pub fn new(name: &str) -> Result<Self, String> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || !rest_ok || name.len() > Self::MAX_LEN {
            return Err(format!(
                "invalid option table_name {name:?}: a table name must be a letter or `_` \
                 followed by at most {} letters, digits or `_` (it is used as an SQL identifier, \
                 so nothing else is accepted)",
                Self::MAX_LEN - 1
            ));
        }
        if name.to_ascii_lowercase().starts_with("sqlite_") {
            return Err(format!(
                "invalid option table_name {name:?}: names starting with `sqlite_` are reserved \
                 by SQLite"
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as given (for messages and reports).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name double-quoted for SQL. Safe because the validated name contains no quote.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// A related object's name (`{table}_{suffix}`), double-quoted: the migrations table and
    /// the indexes, so several tables in one file never share them.
    pub fn quoted_with_suffix(&self, suffix: &str) -> String {
        format!("\"{}_{suffix}\"", self.0)
    }

    /// The related object's name unquoted (for reports and for `sqlite_schema` lookups, where it
    /// is a bound parameter).
    pub fn with_suffix(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.0)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_identifiers() {
        for name in ["vcons", "_x", "V2", "a_b_9", &"a".repeat(63)] {
            let table = TableName::new(name).unwrap();
            assert_eq!(table.quoted(), format!("\"{name}\""));
        }
    }

    #[test]
    fn refuses_everything_else() {
        for name in [
            "",
            "vcons; DROP TABLE x",
            "vcons\"; DROP TABLE x; --",
            "9lives",
            "with space",
            "dash-ed",
            "dotted.name",
            "ünï",
            "a\0b",
            "tab\tle",
            &"a".repeat(64),
            "sqlite_master",
            "SQLITE_x",
        ] {
            let err = TableName::new(name).unwrap_err();
            assert!(err.contains("table_name"), "{err}");
        }
        let err = TableName::new("vcons; DROP TABLE x").unwrap_err();
        assert!(err.contains("\"vcons; DROP TABLE x\""), "{err}");
        assert!(err.contains("letter"), "{err}");
    }

    #[test]
    fn defaults_are_valid_and_checked() {
        let options = Options::default();
        assert_eq!(options.check().unwrap().as_str(), "vcons");
        for bad in [
            Options {
                pool_size: 0,
                ..Options::default()
            },
            Options {
                path: PathBuf::new(),
                ..Options::default()
            },
            Options {
                path: PathBuf::from(":memory:"),
                ..Options::default()
            },
            Options {
                table_name: "x y".into(),
                ..Options::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn options_parse_with_names() {
        let options: Options = plugin_sdk::parse_options(
            r#"{"path": "/tmp/x.db", "synchronous": "full", "pool_size": 2, "create": false}"#,
        )
        .unwrap();
        assert_eq!(options.synchronous, Synchronous::Full);
        assert_eq!(options.pool_size, 2);
        assert!(!options.create);
        let err = plugin_sdk::parse_options::<Options>(r#"{"synchronous": "off"}"#).unwrap_err();
        assert!(err.message().contains("synchronous"), "{err}");
        let err = plugin_sdk::parse_options::<Options>(r#"{"table": "x"}"#).unwrap_err();
        assert!(err.message().contains("table"), "{err}");
    }
}
