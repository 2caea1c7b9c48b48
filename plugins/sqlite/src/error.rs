//! The plugin's own errors, and the one place that decides which [`ErrorKind`] the host sees for
//! each: busy and locked databases are retryable, constraint failures are the caller's, a
//! read-only file is a permission problem.

use std::path::PathBuf;
use std::time::Duration;

use plugin_sdk::{ErrorKind, StorageError};
use rusqlite::ffi;

/// What went wrong, with the file, table or value involved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Options that parse but cannot work.
    #[error("{0}")]
    Options(String),

    /// The database's directory could not be created.
    #[error("cannot create the directory {} for the database: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's answer.
        source: std::io::Error,
    },

    /// Opening or setting up a connection failed.
    #[error("cannot open the SQLite database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's answer.
        source: rusqlite::Error,
    },

    /// `create: false` and the database file does not exist.
    #[error(
        "the SQLite database {} does not exist and the option `create` is false: create it \
         (start once with `create: true`, or provision it) or fix the option `path`",
        path.display()
    )]
    Missing {
        /// The database file.
        path: PathBuf,
    },

    /// A statement failed.
    #[error("{action} in {}: {source}", path.display())]
    Sql {
        /// What was being done ("saving vCon ...").
        action: String,
        /// The database file.
        path: PathBuf,
        /// SQLite's answer.
        source: rusqlite::Error,
    },

    /// The table has not been created (`create: false` and no `provision` yet).
    #[error(
        "table {table} does not exist in {}: run `provision` for this storage (or set the \
         option `create: true` to create it at start-up)",
        path.display()
    )]
    NotProvisioned {
        /// The table.
        table: String,
        /// The database file.
        path: PathBuf,
    },

    /// A table of that name exists but this plugin did not create it.
    #[error(
        "table {table} already exists in {} but has no migration records in {migrations}: it \
         was not created by this plugin; choose another `table_name`, or provision with \
         `recreate` to drop it",
        path.display()
    )]
    ForeignTable {
        /// The table.
        table: String,
        /// The migrations table that should describe it.
        migrations: String,
        /// The database file.
        path: PathBuf,
    },

    /// No connection of this storage became free in time: every one is busy with a long call.
    #[error(
        "no {role} connection to {} became free within {} ms (busy_timeout_ms): the storage is \
         saturated; the host retries",
        path.display(), waited.as_millis()
    )]
    PoolTimeout {
        /// "read" or "write".
        role: &'static str,
        /// The database file.
        path: PathBuf,
        /// How long the call waited.
        waited: Duration,
    },

    /// A record the plugin cannot store as given.
    #[error("cannot store vCon {uuid:?}: {reason}")]
    BadRecord {
        /// The vCon.
        uuid: String,
        /// What is wrong.
        reason: String,
    },

    /// A list cursor this storage did not hand out.
    #[error("invalid list cursor {0:?}: pass the `next` value of the previous page unchanged")]
    BadCursor(String),

    /// A party query that cannot be answered.
    #[error("invalid query: {0}")]
    BadQuery(String),
}

impl Error {
    /// The kind the host acts on.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Options(_)
            | Self::Missing { .. }
            | Self::BadRecord { .. }
            | Self::BadCursor(_)
            | Self::BadQuery(_) => ErrorKind::InvalidInput,
            Self::CreateDir { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    ErrorKind::Unauthorized
                }
                // A file is in the way of the directory: the option is wrong.
                std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists => {
                    ErrorKind::InvalidInput
                }
                other => ErrorKind::from_io(other),
            },
            Self::Open { source, .. } => open_kind(source),
            Self::Sql { source, .. } => sql_kind(source),
            Self::NotProvisioned { .. } => ErrorKind::NotFound,
            Self::ForeignTable { .. } => ErrorKind::Conflict,
            Self::PoolTimeout { .. } => ErrorKind::Unavailable,
        }
    }

    /// What an operator should do, when there is more to say than SQLite's message.
    fn hint(&self) -> Option<&'static str> {
        let source = match self {
            Self::Open { source, .. } | Self::Sql { source, .. } => source,
            _ => return None,
        };
        match source.sqlite_error_code()? {
            ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => Some(
                "another connection or process holds the database's write lock longer than \
                 busy_timeout_ms; the host retries",
            ),
            ffi::ErrorCode::ReadOnly | ffi::ErrorCode::PermissionDenied => Some(
                "the host's user needs write access to the database file and to its directory \
                 (SQLite creates the -wal and -shm files beside it)",
            ),
            ffi::ErrorCode::CannotOpen => Some(
                "check the option `path`: it must name a file in an existing, writable \
                 directory (the directory is created when `create` is true)",
            ),
            ffi::ErrorCode::NotADatabase => {
                Some("the option `path` names a file that is not a SQLite database")
            }
            ffi::ErrorCode::DatabaseCorrupt => {
                Some("the database file is damaged: restore it from a backup")
            }
            ffi::ErrorCode::DiskFull => Some("free space on that file system; the host retries"),
            ffi::ErrorCode::TooBig => Some("the document is too large for SQLite's size limit"),
            _ if is_missing_table(source) => Some(
                "the table is gone (dropped outside this storage?): run `provision` for this \
                 storage",
            ),
            _ => None,
        }
    }

    /// A failed statement while doing `action` ("saving vCon ...") on the database at `path`.
    pub(crate) fn sql(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: rusqlite::Error,
    ) -> Self {
        Self::Sql {
            action: action.into(),
            path: path.into(),
            source,
        }
    }
}

/// The kind for a failing SQL statement during normal operation.
fn sql_kind(err: &rusqlite::Error) -> ErrorKind {
    let Some(code) = err.sqlite_error() else {
        // rusqlite's own errors (a type conversion, a path that is not UTF-8): a bug or a
        // row this plugin did not write.
        return match err {
            rusqlite::Error::InvalidPath(_) => ErrorKind::InvalidInput,
            _ => ErrorKind::Internal,
        };
    };
    match code.code {
        // Another connection or process holds the lock: retry after it lets go.
        ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => ErrorKind::Unavailable,
        ffi::ErrorCode::ReadOnly
        | ffi::ErrorCode::PermissionDenied
        | ffi::ErrorCode::AuthorizationForStatementDenied => ErrorKind::Unauthorized,
        ffi::ErrorCode::ConstraintViolation => match code.extended_code {
            ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_UNIQUE => {
                ErrorKind::Conflict
            }
            _ => ErrorKind::InvalidInput,
        },
        ffi::ErrorCode::TooBig | ffi::ErrorCode::TypeMismatch => ErrorKind::InvalidInput,
        // A full disk, an I/O hiccup, memory pressure, an interrupted call, a file that vanished
        // (an unmounted volume): may succeed later.
        ffi::ErrorCode::DiskFull
        | ffi::ErrorCode::SystemIoFailure
        | ffi::ErrorCode::OutOfMemory
        | ffi::ErrorCode::OperationInterrupted
        | ffi::ErrorCode::FileLockingProtocolFailed
        | ffi::ErrorCode::SchemaChanged
        | ffi::ErrorCode::CannotOpen => ErrorKind::Unavailable,
        _ if is_missing_table(err) => ErrorKind::NotFound,
        _ => ErrorKind::Internal,
    }
}

/// The kind for a failure while opening: a path that cannot be a database is the
/// configuration's fault, not a reason to retry.
fn open_kind(err: &rusqlite::Error) -> ErrorKind {
    match err.sqlite_error_code() {
        Some(ffi::ErrorCode::CannotOpen | ffi::ErrorCode::NotADatabase) => ErrorKind::InvalidInput,
        _ => sql_kind(err),
    }
}

/// SQLite's generic error for a statement on a table that does not exist.
fn is_missing_table(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, Some(message))
        if e.code == ffi::ErrorCode::Unknown && message.starts_with("no such table"))
}

impl From<Error> for StorageError {
    fn from(err: Error) -> Self {
        let kind = err.kind();
        let message = match err.hint() {
            Some(hint) => format!("{err}; {hint}"),
            None => err.to_string(),
        };
        StorageError::new(kind, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message.to_owned()))
    }

    fn kind_of(code: i32) -> ErrorKind {
        StorageError::from(Error::sql(
            "saving vCon u",
            "/d/v.sqlite",
            failure(code, "x"),
        ))
        .kind()
    }

    #[test]
    fn sqlite_codes_map_to_kinds() {
        assert_eq!(kind_of(ffi::SQLITE_BUSY), ErrorKind::Unavailable);
        assert_eq!(kind_of(ffi::SQLITE_BUSY_SNAPSHOT), ErrorKind::Unavailable);
        assert_eq!(kind_of(ffi::SQLITE_LOCKED), ErrorKind::Unavailable);
        assert_eq!(kind_of(ffi::SQLITE_READONLY), ErrorKind::Unauthorized);
        assert_eq!(kind_of(ffi::SQLITE_PERM), ErrorKind::Unauthorized);
        assert_eq!(
            kind_of(ffi::SQLITE_CONSTRAINT_PRIMARYKEY),
            ErrorKind::Conflict
        );
        assert_eq!(kind_of(ffi::SQLITE_CONSTRAINT_UNIQUE), ErrorKind::Conflict);
        assert_eq!(
            kind_of(ffi::SQLITE_CONSTRAINT_NOTNULL),
            ErrorKind::InvalidInput
        );
        assert_eq!(kind_of(ffi::SQLITE_TOOBIG), ErrorKind::InvalidInput);
        assert_eq!(kind_of(ffi::SQLITE_FULL), ErrorKind::Unavailable);
        assert_eq!(kind_of(ffi::SQLITE_IOERR_WRITE), ErrorKind::Unavailable);
        assert_eq!(kind_of(ffi::SQLITE_CORRUPT), ErrorKind::Internal);
        assert_eq!(kind_of(ffi::SQLITE_ERROR), ErrorKind::Internal);
    }

    #[test]
    fn a_missing_table_says_to_provision() {
        let err = StorageError::from(Error::sql(
            "saving vCon u",
            "/d/v.sqlite",
            failure(ffi::SQLITE_ERROR, "no such table: vcons"),
        ));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.message().contains("provision"), "{err}");
        assert!(err.message().contains("/d/v.sqlite"), "{err}");
    }

    #[test]
    fn opening_a_non_database_is_the_configuration() {
        for code in [ffi::SQLITE_CANTOPEN, ffi::SQLITE_NOTADB] {
            let err = StorageError::from(Error::Open {
                path: "/d/not-a-db".into(),
                source: failure(code, "x"),
            });
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.message().contains("/d/not-a-db"), "{err}");
            assert!(err.message().contains("option `path`"), "{err}");
        }
        let err = StorageError::from(Error::Open {
            path: "/d/v".into(),
            source: failure(ffi::SQLITE_BUSY, "database is locked"),
        });
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn read_only_says_what_access_is_needed() {
        let err = StorageError::from(Error::sql(
            "saving vCon u",
            "/d/v.sqlite",
            failure(ffi::SQLITE_READONLY, "attempt to write a readonly database"),
        ));
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(err.message().contains("write access"), "{err}");
    }
}
