//! The error that crosses the boundary: an open kind, a message and a retry hint.

use abi_stable::std_types::RString;
use abi_stable::StableAbi;

/// What kind of failure a plugin reports, as an open `u8`.
///
/// Not a Rust enum on purpose: a newer plugin may send a kind this host does not know, and an
/// unknown discriminant of a Rust enum is undefined behaviour. The host maps unknown codes to
/// [`ErrorKind::INTERNAL`] and keeps the message. The host's retry policy reads only the kind and
/// [`PluginError::retry_after_ms`].
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u8);

impl ErrorKind {
    /// The vCon (or another named thing) does not exist. `get` answers `None` instead.
    pub const NOT_FOUND: Self = Self(1);
    /// The input is wrong and retrying will not help (bad options, a document the backend refuses).
    pub const INVALID_INPUT: Self = Self(2);
    /// The write conflicts with what is stored (a failed precondition).
    pub const CONFLICT: Self = Self(3);
    /// The backend is unreachable, overloaded, timed out or locked: retrying later may succeed.
    pub const UNAVAILABLE: Self = Self(4);
    /// Authentication or permission failed: fix credentials, then replay.
    pub const UNAUTHORIZED: Self = Self(5);
    /// The plugin does not implement the operation (see [`Capabilities`](crate::Capabilities)).
    pub const UNSUPPORTED: Self = Self(6);
    /// A bug or an unexpected state, including a panic caught at the boundary.
    pub const INTERNAL: Self = Self(7);

    /// The kind as this host understands it: unknown codes from newer plugins become `INTERNAL`.
    pub const fn normalized(self) -> Self {
        if self.0 >= Self::NOT_FOUND.0 && self.0 <= Self::INTERNAL.0 {
            self
        } else {
            Self::INTERNAL
        }
    }

    /// A short stable name for logs, metrics labels and the dead-letter record.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "not_found",
            2 => "invalid_input",
            3 => "conflict",
            4 => "unavailable",
            5 => "unauthorized",
            6 => "unsupported",
            7 => "internal",
            _ => "unknown",
        }
    }

    /// Whether the host may retry a call that failed with this kind.
    pub const fn is_retryable(self) -> bool {
        self.0 == Self::UNAVAILABLE.0
    }
}

impl std::fmt::Debug for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error returned by a plugin.
///
/// The message is owned by the plugin's allocator; `RString` frees it through the plugin's own
/// vtable, so no allocator mismatch is possible.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What kind of failure this is; see [`ErrorKind`].
    pub kind: ErrorKind,
    /// What failed, on what, and what to do, for a person to read.
    pub message: RString,
    /// A backend's hint for when to retry (`Retry-After`, throttling), 0 when it gave none.
    pub retry_after_ms: u64,
}

impl PluginError {
    /// An error of `kind` with no retry hint.
    pub fn new(kind: ErrorKind, message: impl Into<RString>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after_ms: 0,
        }
    }

    /// The error an optional operation answers when the plugin does not implement it.
    pub fn unsupported(operation: &str) -> Self {
        Self::new(
            ErrorKind::UNSUPPORTED,
            format!("this storage does not support `{operation}`"),
        )
    }
}

impl std::fmt::Debug for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginError")
            .field("kind", &self.kind)
            .field("message", &self.message.as_str())
            .field("retry_after_ms", &self.retry_after_ms)
            .finish()
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_are_internal() {
        assert_eq!(ErrorKind(200).normalized(), ErrorKind::INTERNAL);
        assert_eq!(ErrorKind(0).normalized(), ErrorKind::INTERNAL);
        assert_eq!(ErrorKind::UNAVAILABLE.normalized(), ErrorKind::UNAVAILABLE);
    }

    #[test]
    fn only_unavailable_is_retryable() {
        for code in 0..=u8::MAX {
            let kind = ErrorKind(code);
            assert_eq!(kind.is_retryable(), kind == ErrorKind::UNAVAILABLE);
        }
    }
}
