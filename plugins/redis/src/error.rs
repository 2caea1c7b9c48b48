//! The plugin's own errors, and the one place that decides which [`ErrorKind`] the host sees for
//! each, with a hint telling the operator what to do.
//!
//! An unreachable, restarting, loading, full or read-only server is retryable (`Unavailable`):
//! the host retries with back-off, and every write is an idempotent `SET`, so a retry is safe.
//! Refused credentials are `Unauthorized`; a wrong URL, prefix or uuid `InvalidInput`; a key of
//! the wrong type (another program writing under the prefix) `Conflict`.

use std::time::Duration;

use plugin_sdk::{ErrorKind, StorageError};

/// What went wrong, with the server (password hidden), the key or the vCon involved. Never holds
/// a password.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Options that parse but cannot work.
    #[error("{0}")]
    Options(String),

    /// A new connection could not be made (refused, timed out, authentication, database index).
    #[error("cannot connect to Redis at {target}: {}", describe(source))]
    Connect {
        /// The server, password hidden.
        target: String,
        /// The client's answer.
        source: redis::RedisError,
    },

    /// No connection could be had because the latest attempt to make one failed (the pool keeps
    /// trying in the background, and the call does not wait for it).
    #[error("cannot connect to Redis at {target}: {failure}")]
    Unreachable {
        /// The server, password hidden.
        target: String,
        /// The kind of the latest connection failure.
        kind: ErrorKind,
        /// What the latest connection attempt answered, with its hint.
        failure: String,
    },

    /// Every connection stayed busy (or none could be made) for `connect_timeout`.
    #[error(
        "no connection to Redis at {target} became free within {} ms (connect_timeout): the \
         server is slow or unreachable, or pool_size is too small; the host retries",
        waited.as_millis()
    )]
    PoolTimeout {
        /// The server, password hidden.
        target: String,
        /// How long the call waited.
        waited: Duration,
    },

    /// A command failed.
    #[error("{action} at {target}: {}", describe(source))]
    Command {
        /// What was being done ("saving vCon ...").
        action: String,
        /// The server, password hidden.
        target: String,
        /// The client's answer.
        source: redis::RedisError,
    },

    /// A uuid that is not a UUID, refused before it became part of a key.
    #[error(
        "{uuid:?} is not a UUID (8-4-4-4-12 hex digits), so it cannot be part of a Redis key; \
         nothing was sent to Redis"
    )]
    BadUuid {
        /// The uuid as given.
        uuid: String,
    },

    /// A list cursor this storage did not hand out.
    #[error("invalid list cursor {0:?}: pass the `next` value of the previous page unchanged")]
    BadCursor(String),

    /// Redis answered something this plugin did not expect.
    #[error("{action} at {target}: unexpected answer from Redis: {detail}")]
    Unexpected {
        /// What was being done.
        action: String,
        /// The server, password hidden.
        target: String,
        /// What came back.
        detail: String,
    },
}

impl Error {
    /// A failed command while doing `action`.
    pub(crate) fn command(
        action: impl Into<String>,
        target: &str,
        source: redis::RedisError,
    ) -> Self {
        Self::Command {
            action: action.into(),
            target: target.to_owned(),
            source,
        }
    }

    /// The kind the host acts on.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Options(_) | Self::BadUuid { .. } | Self::BadCursor(_) => ErrorKind::InvalidInput,
            Self::Connect { source, .. } | Self::Command { source, .. } => kind_of(source),
            Self::Unreachable { kind, .. } => *kind,
            Self::PoolTimeout { .. } => ErrorKind::Unavailable,
            Self::Unexpected { .. } => ErrorKind::Internal,
        }
    }

    /// What an operator should do, when there is more to say than Redis's message.
    fn hint(&self) -> Option<&'static str> {
        match self {
            Self::Connect { source, .. } | Self::Command { source, .. } => hint_for(source),
            _ => None,
        }
    }
}

/// The kind for a client error.
pub(crate) fn kind_of(err: &redis::RedisError) -> ErrorKind {
    use redis::ErrorKind as R;
    match err.kind() {
        R::IoError => match io_kind(err) {
            // A Unix socket the process may not open is a permission problem, not an outage.
            Some(std::io::ErrorKind::PermissionDenied) => ErrorKind::Unauthorized,
            // Refused, reset, timed out, a name that does not resolve (yet), a socket file not
            // there yet: the server may come back.
            _ => ErrorKind::Unavailable,
        },
        R::AuthenticationFailed => ErrorKind::Unauthorized,
        R::BusyLoadingError | R::TryAgain | R::MasterDown | R::ClusterDown | R::ReadOnly => {
            ErrorKind::Unavailable
        }
        // A Redis Cluster node redirecting a key elsewhere: this plugin talks to one server.
        R::InvalidClientConfig | R::Moved | R::Ask | R::CrossSlot => ErrorKind::InvalidInput,
        _ => match err.code() {
            Some("NOAUTH" | "WRONGPASS" | "NOPERM") => ErrorKind::Unauthorized,
            Some(
                "OOM" | "MISCONF" | "BUSY" | "LOADING" | "MASTERDOWN" | "TRYAGAIN" | "READONLY"
                | "CLUSTERDOWN",
            ) => ErrorKind::Unavailable,
            Some("WRONGTYPE") => ErrorKind::Conflict,
            Some("MOVED" | "ASK" | "CROSSSLOT") => ErrorKind::InvalidInput,
            Some("ERR") => {
                let detail = err.detail().unwrap_or_default();
                if detail.contains("max number of clients") {
                    ErrorKind::Unavailable
                } else if detail.contains("DB index is out of range") {
                    ErrorKind::InvalidInput
                } else if detail.contains("AUTH") || detail.contains("password") {
                    ErrorKind::Unauthorized
                } else {
                    ErrorKind::Internal
                }
            }
            _ => ErrorKind::Internal,
        },
    }
}

/// The hint for a client error, when there is one.
fn hint_for(err: &redis::RedisError) -> Option<&'static str> {
    let detail = err.detail().unwrap_or_default();
    let hint = match kind_of(err) {
        ErrorKind::Unavailable => match (err.code(), io_kind(err)) {
            (_, Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)) => {
                "Redis did not answer in time (connect_timeout, command_timeout): is it \
                 overloaded, or is the address wrong? The host retries"
            }
            (_, Some(_)) => {
                "is Redis running and listening there? Check redis_url (or REDIS_URL); the host \
                 retries, and the storage reconnects by itself when Redis is back"
            }
            (Some("OOM"), _) => {
                "Redis reached maxmemory: raise maxmemory, lower `expires`, or set an eviction \
                 policy; the host retries"
            }
            (Some("MISCONF"), _) => {
                "Redis refuses writes because it cannot persist (a failing RDB or AOF save: see \
                 its log); the host retries"
            }
            (Some("READONLY"), _) => {
                "redis_url points at a read-only replica (or a failover is in progress): point \
                 it at the primary; the host retries"
            }
            (Some("LOADING"), _) => "Redis is loading its data after a restart; the host retries",
            (Some("ERR"), _) if detail.contains("max number of clients") => {
                "Redis reached maxclients: raise it, or lower pool_size; the host retries"
            }
            _ => "the host retries",
        },
        ErrorKind::Unauthorized => {
            if io_kind(err).is_some() {
                "the Unix socket's permissions refuse this process"
            } else {
                "check the user and password in redis_url \
                 (redis://user:password@host:6379/0, or redis://:password@host:6379/0 without \
                 ACL users)"
            }
        }
        ErrorKind::InvalidInput if matches!(err.code(), Some("MOVED" | "ASK" | "CROSSSLOT")) => {
            "redis_url points at a node of a Redis Cluster; this plugin talks to one server \
             (a standalone Redis, a primary, or a cluster proxy)"
        }
        ErrorKind::InvalidInput if detail.contains("DB index is out of range") => {
            "the database number at the end of redis_url is beyond the server's `databases` \
             setting (16 by default: 0 to 15)"
        }
        ErrorKind::Conflict => {
            "the key holds something other than a string: another program writes keys under \
             this prefix; give this storage its own `prefix`"
        }
        _ => return None,
    };
    Some(hint)
}

/// The I/O error under a client error, if any.
fn io_kind(err: &redis::RedisError) -> Option<std::io::ErrorKind> {
    if !err.is_io_error() {
        return None;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    // The client keeps the I/O error inside without exposing it as a source; its kinds are
    // told apart by the client's own predicates.
    if err.is_timeout() {
        Some(std::io::ErrorKind::TimedOut)
    } else if err.is_connection_refusal() {
        Some(std::io::ErrorKind::ConnectionRefused)
    } else if err.is_connection_dropped() {
        Some(std::io::ErrorKind::ConnectionReset)
    } else if err.to_string().contains("ermission denied") {
        Some(std::io::ErrorKind::PermissionDenied)
    } else {
        Some(std::io::ErrorKind::Other)
    }
}

/// Whether the error says the connection is gone (the server restarted or closed it), so the
/// command can be tried once more on another connection: the server either never got it or, for
/// the idempotent commands this plugin sends, running it twice changes nothing.
pub(crate) fn is_dropped_connection(err: &redis::RedisError) -> bool {
    err.is_connection_dropped()
        || matches!(
            io_kind(err),
            Some(
                std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::NotConnected
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
            )
        )
}

/// Whether the connection must not be used again after this error: any I/O failure (a
/// time-out leaves an answer in flight that the next command would read) and any answer the
/// client could not parse.
pub(crate) fn spoils_connection(err: &redis::RedisError) -> bool {
    use redis::ErrorKind as R;
    matches!(err.kind(), R::IoError | R::ParseError | R::ClientError)
}

/// The client's error and, when there is one, what to do about it: the text of a connection
/// failure as the pool records it for the calls that follow.
pub(crate) fn explain(err: &redis::RedisError) -> String {
    match hint_for(err) {
        Some(hint) => format!("{}; {hint}", describe(err)),
        None => describe(err),
    }
}

/// The client's error as one line: `CODE detail` for a server error (`WRONGPASS invalid
/// username-password pair`), the I/O error's text for an I/O error.
pub(crate) fn describe(err: &redis::RedisError) -> String {
    if err.kind() == redis::ErrorKind::AuthenticationFailed {
        return "authentication failed (the password, or user and password, were refused)"
            .to_owned();
    }
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => err.to_string(),
    }
}

impl Error {
    /// The message, with the hint when there is one.
    pub(crate) fn message(&self) -> String {
        match self.hint() {
            Some(hint) => format!("{self}; {hint}"),
            None => self.to_string(),
        }
    }
}

impl From<Error> for StorageError {
    fn from(err: Error) -> Self {
        let kind = err.kind();
        let error = StorageError::new(kind, err.message());
        match kind {
            // A hint for the host's back-off: a restarting or busy server usually recovers
            // within a second or two.
            ErrorKind::Unavailable => error.with_retry_after(Duration::from_millis(500)),
            _ => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str, detail: &str) -> redis::RedisError {
        redis::make_extension_error(code.to_owned(), Some(detail.to_owned()))
    }

    #[test]
    fn server_errors_map_to_kinds_with_hints() {
        let cases = [
            (
                "WRONGPASS",
                "invalid username-password pair",
                ErrorKind::Unauthorized,
                "password",
            ),
            (
                "NOAUTH",
                "Authentication required.",
                ErrorKind::Unauthorized,
                "password",
            ),
            (
                "OOM",
                "command not allowed when used memory > 'maxmemory'.",
                ErrorKind::Unavailable,
                "maxmemory",
            ),
            (
                "MISCONF",
                "Redis is configured to save RDB snapshots",
                ErrorKind::Unavailable,
                "persist",
            ),
            (
                "WRONGTYPE",
                "Operation against a key holding the wrong kind of value",
                ErrorKind::Conflict,
                "prefix",
            ),
            (
                "MOVED",
                "3999 127.0.0.1:6381",
                ErrorKind::InvalidInput,
                "Cluster",
            ),
            (
                "READONLY",
                "You can't write against a read only replica.",
                ErrorKind::Unavailable,
                "primary",
            ),
        ];
        for (code, detail, kind, hint) in cases {
            let err = Error::command(
                "saving vCon x",
                "redis://h:6379/0",
                server_error(code, detail),
            );
            assert_eq!(err.kind(), kind, "{code}");
            let storage = StorageError::from(err);
            assert!(storage.message().contains(code), "{storage}");
            assert!(storage.message().contains(hint), "{storage}");
            assert!(
                storage
                    .message()
                    .starts_with("saving vCon x at redis://h:6379/0: "),
                "{storage}"
            );
        }
    }

    #[test]
    fn io_errors_are_retryable_and_say_what_to_do() {
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let err = Error::Connect {
            target: "redis://127.0.0.1:1/0".into(),
            source: refused,
        };
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let storage = StorageError::from(err);
        assert!(storage.message().contains("running"), "{storage}");
        assert_eq!(storage.retry_after(), Some(Duration::from_millis(500)));

        let reset =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(is_dropped_connection(&reset));
        assert!(spoils_connection(&reset));
        let timeout = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(!is_dropped_connection(&timeout));
        assert!(spoils_connection(&timeout));
        assert!(StorageError::from(Error::command("x", "t", timeout))
            .message()
            .contains("in time"));
        assert!(!spoils_connection(&server_error("WRONGTYPE", "x")));
    }

    #[test]
    fn plugin_errors_have_fixed_kinds() {
        assert_eq!(Error::Options("x".into()).kind(), ErrorKind::InvalidInput);
        assert_eq!(
            Error::BadUuid { uuid: "*".into() }.kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(Error::BadCursor("x".into()).kind(), ErrorKind::InvalidInput);
        assert_eq!(
            Error::PoolTimeout {
                target: "t".into(),
                waited: Duration::from_secs(1)
            }
            .kind(),
            ErrorKind::Unavailable
        );
    }
}
