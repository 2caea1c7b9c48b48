//! The plugin's own errors, and the one place that decides which [`ErrorKind`] the host sees
//! for each (and so whether it retries, dead-letters or refuses).

use plugin_sdk::{ErrorKind, StorageError};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Options that parse but cannot work.
    #[error("{0}")]
    Options(String),
    /// A uuid that is not 8-4-4-4-12 hex digits, refused before it goes into a URL.
    #[error("refusing uuid {0:?}: expected 8-4-4-4-12 hex digits")]
    BadUuid(String),
    /// The HTTP layer's error (connection, time-out, status), already of the right kind.
    #[error("{0}")]
    Http(StorageError),
    /// A `GET` answered something that is not a JSON document.
    #[error("GET {url} answered a body that is not a JSON vCon: {detail}")]
    NotJson {
        /// The URL (without query).
        url: String,
        /// What the parser said.
        detail: String,
    },
}

impl Error {
    /// The kind the host acts on.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Options(_) | Self::BadUuid(_) => ErrorKind::InvalidInput,
            Self::Http(err) => err.kind(),
            Self::NotJson { .. } => ErrorKind::Internal,
        }
    }
}

impl From<StorageError> for Error {
    fn from(err: StorageError) -> Self {
        Self::Http(err)
    }
}

impl From<Error> for StorageError {
    fn from(err: Error) -> Self {
        let kind = err.kind();
        match err {
            Error::Http(inner) => inner,
            other => StorageError::new(kind, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            StorageError::from(Error::BadUuid("x".into())).kind(),
            ErrorKind::InvalidInput
        );
        let unavailable = StorageError::unavailable("down");
        assert_eq!(
            StorageError::from(Error::from(unavailable.clone())),
            unavailable
        );
        assert_eq!(
            StorageError::from(Error::NotJson {
                url: "u".into(),
                detail: "d".into()
            })
            .kind(),
            ErrorKind::Internal
        );
    }
}
