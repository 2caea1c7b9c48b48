//! The error a plugin returns, with a kind the host's retry policy acts on.

use std::time::Duration;

/// What kind of failure happened: the host decides from this alone whether to retry, dead-letter
/// or refuse. Mirrors the ABI's open set of kinds.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A named thing does not exist (not used for a missing vCon: `get` answers `None`).
    NotFound,
    /// The input or the options are wrong; retrying will not help.
    InvalidInput,
    /// The write conflicts with what is stored.
    Conflict,
    /// The backend is unreachable, timed out, throttled or locked: the host retries with back-off.
    Unavailable,
    /// Credentials or permissions were refused.
    Unauthorized,
    /// The operation is not implemented by this storage.
    Unsupported,
    /// A bug, an unexpected answer, or a panic caught at the boundary.
    Internal,
}

impl ErrorKind {
    pub(crate) fn to_abi(self) -> plugin_abi::ErrorKind {
        use plugin_abi::ErrorKind as Abi;
        match self {
            Self::NotFound => Abi::NOT_FOUND,
            Self::InvalidInput => Abi::INVALID_INPUT,
            Self::Conflict => Abi::CONFLICT,
            Self::Unavailable => Abi::UNAVAILABLE,
            Self::Unauthorized => Abi::UNAUTHORIZED,
            Self::Unsupported => Abi::UNSUPPORTED,
            Self::Internal => Abi::INTERNAL,
        }
    }

    /// The kind for a PostgreSQL SQLSTATE code, so SQL-speaking plugins map errors alike:
    /// connection exceptions (`08`), resource shortage (`53`), operator intervention (`57`,
    /// e.g. a server shutting down) and serialization/deadlock (`40`) are retryable;
    /// authorization (`28`, `42501`) is `Unauthorized`; unique violations `Conflict`;
    /// other data and integrity errors (`22`, `23`) `InvalidInput`.
    pub fn from_sqlstate(code: &str) -> Self {
        match code {
            "23505" => Self::Conflict,
            "42501" => Self::Unauthorized,
            _ => match code.get(..2) {
                Some("08" | "53" | "57" | "40" | "58") => Self::Unavailable,
                Some("28") => Self::Unauthorized,
                Some("22" | "23" | "42") => Self::InvalidInput,
                _ => Self::Internal,
            },
        }
    }

    /// The kind for an I/O error: time-outs and interrupted or refused connections are
    /// retryable, permission problems are `Unauthorized`, anything else `Internal`.
    pub fn from_io(kind: std::io::ErrorKind) -> Self {
        use std::io::ErrorKind as Io;
        match kind {
            Io::NotFound => Self::NotFound,
            Io::PermissionDenied | Io::ReadOnlyFilesystem => Self::Unauthorized,
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::BrokenPipe
            | Io::TimedOut
            | Io::Interrupted
            | Io::WouldBlock
            | Io::StorageFull
            | Io::QuotaExceeded
            | Io::ResourceBusy
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::NetworkDown => Self::Unavailable,
            Io::InvalidInput | Io::InvalidData | Io::InvalidFilename | Io::FileTooLarge => {
                Self::InvalidInput
            }
            Io::AlreadyExists => Self::Conflict,
            Io::Unsupported => Self::Unsupported,
            _ => Self::Internal,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.to_abi().name())
    }
}

/// An error from a storage operation: a kind, a message for a person, and an optional hint for
/// when to retry.
///
/// Plugins usually keep a private `thiserror` enum of their own and convert it into this at the
/// edge, choosing the kind explicitly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    kind: ErrorKind,
    message: String,
    retry_after: Option<Duration>,
}

impl StorageError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The backend is temporarily unavailable: the host will retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// The input or options are wrong.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// Credentials or permissions were refused.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }

    /// A bug or an unexpected state.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The write conflicts with what is stored.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// A named thing does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// The operation is not implemented: what every optional [`Storage`](crate::Storage) method
    /// answers by default.
    pub fn unsupported(operation: &str) -> Self {
        Self::new(
            ErrorKind::Unsupported,
            format!("this storage does not support `{operation}`"),
        )
    }

    /// An I/O error on `what` (a path, an address), with the kind chosen from the I/O kind.
    pub fn io(what: impl std::fmt::Display, err: &std::io::Error) -> Self {
        Self::new(ErrorKind::from_io(err.kind()), format!("{what}: {err}"))
    }

    /// Adds the backend's hint for when a retry may succeed.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Prefixes the message with context (`"saving 1f0e…: "`).
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The retry hint, when the backend gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    pub(crate) fn into_abi(self) -> plugin_abi::PluginError {
        plugin_abi::PluginError {
            kind: self.kind.to_abi(),
            message: self.message.into(),
            retry_after_ms: self
                .retry_after
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_kinds() {
        assert_eq!(ErrorKind::from_sqlstate("08006"), ErrorKind::Unavailable);
        assert_eq!(ErrorKind::from_sqlstate("57P01"), ErrorKind::Unavailable);
        assert_eq!(ErrorKind::from_sqlstate("28P01"), ErrorKind::Unauthorized);
        assert_eq!(ErrorKind::from_sqlstate("23505"), ErrorKind::Conflict);
        assert_eq!(ErrorKind::from_sqlstate("22P02"), ErrorKind::InvalidInput);
        assert_eq!(ErrorKind::from_sqlstate("XX000"), ErrorKind::Internal);
        assert_eq!(ErrorKind::from_sqlstate(""), ErrorKind::Internal);
    }

    #[test]
    fn abi_conversion_keeps_retry_hint() {
        let err = StorageError::unavailable("busy").with_retry_after(Duration::from_millis(250));
        let abi = err.into_abi();
        assert_eq!(abi.kind, plugin_abi::ErrorKind::UNAVAILABLE);
        assert_eq!(abi.retry_after_ms, 250);
        assert_eq!(abi.message.as_str(), "busy");
    }
}
