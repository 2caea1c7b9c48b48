//! The plugin's own errors, and the one place that decides which [`ErrorKind`] the host sees for
//! each: an unreachable or restarting server and a saturated pool are retryable
//! (`Unavailable`), refused credentials are `Unauthorized`, bad data is `InvalidInput`, a
//! missing table or database is `NotFound`.
//!
//! Server errors are mapped by SQLSTATE with the SDK's [`ErrorKind::from_sqlstate`] (shared by
//! every SQL plugin), plus the few codes this plugin knows more about.

use std::error::Error as _;
use std::time::Duration;

use plugin_sdk::{ErrorKind, StorageError};

/// What went wrong, with the server, table or vCon involved. Never holds a password.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Options that parse but cannot work.
    #[error("{0}")]
    Options(String),

    /// A new connection could not be made (refused, timed out, TLS, authentication).
    #[error("cannot connect to PostgreSQL at {target}: {}", describe(source))]
    Connect {
        /// `host:port/database as user`.
        target: String,
        /// The driver's answer.
        source: tokio_postgres::Error,
    },

    /// Every connection of the pool stayed busy (or could not be made) for `connect_timeout`.
    #[error(
        "no connection to PostgreSQL at {target} became free within {} s (connect_timeout): \
         the server is slow or unreachable, or pool_size is too small; the host retries",
        waited.as_secs()
    )]
    PoolTimeout {
        /// `host:port/database as user`.
        target: String,
        /// How long the call waited.
        waited: Duration,
    },

    /// The pool was closed (after `close`).
    #[error("the storage is closed")]
    Closed,

    /// Something this plugin did not expect of itself or its pool.
    #[error("{0}")]
    Internal(String),

    /// A statement failed.
    #[error("{action}: {}", describe(source))]
    Sql {
        /// What was being done ("saving vCon ...").
        action: String,
        /// The driver's answer.
        source: tokio_postgres::Error,
    },

    /// The table does not exist and the storage may not create it (`create: false`).
    #[error(
        "table {table} does not exist: run `vcon-host provision` for this storage (or set the \
         option `create: true` to create it at start-up)"
    )]
    NotProvisioned {
        /// The table.
        table: String,
    },

    /// A table of that name exists but is not one this plugin can store into.
    #[error(
        "table {table} exists but is not a vCon table ({problems}); choose another `table_name`, \
         or provision with `recreate` to drop it"
    )]
    ForeignTable {
        /// The table.
        table: String,
        /// What does not match.
        problems: String,
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
    /// A failed statement while doing `action`.
    pub(crate) fn sql(action: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Self::Sql {
            action: action.into(),
            source,
        }
    }

    /// The kind the host acts on.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Options(_) | Self::BadRecord { .. } | Self::BadCursor(_) | Self::BadQuery(_) => {
                ErrorKind::InvalidInput
            }
            Self::Connect { source, .. } => connect_kind(source),
            Self::PoolTimeout { .. } | Self::Closed => ErrorKind::Unavailable,
            Self::Sql { source, .. } => driver_kind(source),
            Self::NotProvisioned { .. } => ErrorKind::NotFound,
            Self::ForeignTable { .. } => ErrorKind::Conflict,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether this is the server saying the table is gone (dropped behind the storage's back),
    /// so the storage forgets what it knew about the table.
    pub(crate) fn is_missing_table(&self) -> bool {
        matches!(self, Self::Sql { source, .. } if sqlstate(source) == Some("42P01"))
    }

    /// What an operator should do, when there is more to say than the server's message.
    fn hint(&self) -> Option<&'static str> {
        let source = match self {
            Self::Connect { source, .. } | Self::Sql { source, .. } => source,
            _ => return None,
        };
        let hint = match sqlstate(source) {
            Some("28P01" | "28000") => {
                "check the options user and password (or the url), and pg_hba.conf on the server"
            }
            Some("3D000") => "create the database (`createdb NAME`) or fix the option `database`",
            Some("42P01") => {
                "the table is gone (dropped outside this storage?): run `vcon-host provision` for \
                 this storage"
            }
            Some("42501") => {
                "grant the role the privileges it needs on the table (and CREATE on the schema to \
                 provision)"
            }
            Some("57014") => {
                "the statement ran longer than statement_timeout; the host retries (raise \
                 statement_timeout for very large batches)"
            }
            Some("53300") => {
                "the server has no free connection slot (max_connections); the host retries"
            }
            Some(code) if code.starts_with("57P") || code.starts_with("08") => {
                "the server is restarting or the connection was lost; the host retries"
            }
            Some(_) => return None,
            None => match io_kind(source) {
                Some(std::io::ErrorKind::ConnectionRefused) => {
                    "is PostgreSQL running and listening on that host and port? The host retries"
                }
                _ if is_tls_problem(source) => {
                    "check the option sslmode (and sslrootcert) against the server's TLS setup"
                }
                _ => return None,
            },
        };
        Some(hint)
    }
}

/// The server's SQLSTATE, when the error came from the server.
pub(crate) fn sqlstate(err: &tokio_postgres::Error) -> Option<&str> {
    err.code().map(|code| code.code())
}

/// The I/O error under a driver error, if any.
fn io_kind(err: &tokio_postgres::Error) -> Option<std::io::ErrorKind> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// Whether the failure is TLS's: a handshake refused, a certificate not trusted, a server
/// without TLS under `sslmode: require`. Configuration, not a reason to retry.
fn is_tls_problem(err: &tokio_postgres::Error) -> bool {
    let mut source = err.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        source = cause.source();
    }
    let text = err.to_string();
    text.contains("TLS") || text.contains("tls")
}

/// The kind of a failed statement on an open connection.
fn driver_kind(err: &tokio_postgres::Error) -> ErrorKind {
    if let Some(code) = sqlstate(err) {
        return match code {
            // The database or table does not exist: named things, not bad input.
            "3D000" | "42P01" => ErrorKind::NotFound,
            // Not enough rights is a permission problem, whatever the class.
            "42501" => ErrorKind::Unauthorized,
            // Data the server cannot hold as given (a NUL in JSON text, a value out of range).
            "54000" => ErrorKind::InvalidInput,
            _ => ErrorKind::from_sqlstate(code),
        };
    }
    if err.is_closed() {
        // The connection ended under the call (a restart, a network cut): retry on another.
        return ErrorKind::Unavailable;
    }
    match io_kind(err) {
        Some(kind) => match ErrorKind::from_io(kind) {
            // On a live connection any I/O failure is the connection's, so retryable.
            ErrorKind::Internal | ErrorKind::InvalidInput | ErrorKind::NotFound => {
                ErrorKind::Unavailable
            }
            other => other,
        },
        // A value the driver could not convert, a row of an unexpected shape: a bug.
        None => ErrorKind::Internal,
    }
}

/// The kind of a failure to connect.
fn connect_kind(err: &tokio_postgres::Error) -> ErrorKind {
    if sqlstate(err).is_some() {
        return driver_kind(err);
    }
    if is_tls_problem(err) {
        return ErrorKind::InvalidInput;
    }
    // Refused, reset, timed out, a name that does not resolve (yet): the server may come back.
    ErrorKind::Unavailable
}

/// The driver's error as one line: the server's message and SQLSTATE for a server error,
/// otherwise the driver's text with its causes.
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        return text;
    }
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

impl From<Error> for StorageError {
    fn from(err: Error) -> Self {
        let kind = err.kind();
        let message = match err.hint() {
            Some(hint) => format!("{err}; {hint}"),
            None => err.to_string(),
        };
        let error = StorageError::new(kind, message);
        match kind {
            // A hint for the host's back-off: a pool or server that is busy or restarting
            // usually recovers within a second or two.
            ErrorKind::Unavailable => error.with_retry_after(Duration::from_millis(500)),
            _ => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_errors_have_fixed_kinds() {
        let cases = [
            (Error::Options("x".into()), ErrorKind::InvalidInput),
            (
                Error::PoolTimeout {
                    target: "h:5432/d as u".into(),
                    waited: Duration::from_secs(10),
                },
                ErrorKind::Unavailable,
            ),
            (Error::Closed, ErrorKind::Unavailable),
            (
                Error::NotProvisioned {
                    table: "vcons".into(),
                },
                ErrorKind::NotFound,
            ),
            (
                Error::ForeignTable {
                    table: "vcons".into(),
                    problems: "no column vcon_json".into(),
                },
                ErrorKind::Conflict,
            ),
            (
                Error::BadRecord {
                    uuid: "u".into(),
                    reason: "r".into(),
                },
                ErrorKind::InvalidInput,
            ),
        ];
        for (err, kind) in cases {
            let storage = StorageError::from(err);
            assert_eq!(storage.kind(), kind, "{storage}");
        }
    }

    #[test]
    fn retryable_errors_carry_a_hint() {
        let err = StorageError::from(Error::PoolTimeout {
            target: "h:5432/d as u".into(),
            waited: Duration::from_secs(3),
        });
        assert_eq!(err.retry_after(), Some(Duration::from_millis(500)));
        assert!(err.message().contains("h:5432/d"), "{err}");
        assert!(err.message().contains("3 s"), "{err}");
    }

    #[test]
    fn a_missing_table_says_to_provision() {
        let err = StorageError::from(Error::NotProvisioned {
            table: "vcons".into(),
        });
        assert!(err.message().contains("provision"), "{err}");
    }
}
