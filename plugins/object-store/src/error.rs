//! The plugin's own errors, and the one place that decides which [`ErrorKind`] the host sees
//! for each, and so whether it retries (`Unavailable`), dead-letters or refuses.
//!
//! object_store reports HTTP failures after its own bounded retries as a `Generic` error whose
//! cause chain holds the transport error or the response status. The status type is private to
//! object_store, so the status is read from the message it prints (`status code: 503`); a
//! transport error ([`HttpError`]) or a local I/O error is found by walking the chain.

use std::error::Error as StdError;
use std::io;

use object_store::client::HttpError;
use plugin_sdk::{ErrorKind, StorageError};

/// What went wrong, with the key or value involved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A store operation failed on `path`.
    #[error("{action} {path}: {source}")]
    Store {
        /// What was being done ("writing", "reading the pointer").
        action: &'static str,
        /// The key (or the prefix, for listings).
        path: String,
        /// object_store's error.
        source: object_store::Error,
    },
    /// A uuid that is not canonical, refused before it becomes part of a key.
    #[error(
        "refusing uuid {0:?}: this storage only accepts canonical lowercase UUIDs (8-4-4-4-12 \
         hex digits), which are safe in an object key"
    )]
    BadUuid(String),
    /// A `created_at` whose year has no four-digit date folder.
    #[error("created_at {0} is outside the years 0000-9999, which have no YYYY/MM/DD folder")]
    DateOutOfRange(String),
    /// A lookup pointer whose body is not a date folder.
    #[error(
        "the lookup pointer {path} holds {body:?}, not a date folder YYYY/MM/DD; it was not \
         written by this plugin or the Python s3 module: fix or delete it"
    )]
    BadPointer {
        /// The pointer's key.
        path: String,
        /// What it holds (cut to 64 bytes).
        body: String,
    },
    /// A stored object that looks like gzip but does not decompress.
    #[error(
        "cannot decompress {path}: {source}; the object is damaged (restore it from a backup \
         or delete it)"
    )]
    Corrupt {
        /// The object's key.
        path: String,
        /// What the decoder said.
        source: io::Error,
    },
    /// A list cursor this storage did not hand out.
    #[error("invalid list cursor {0:?}: pass the `next` value of the previous page")]
    BadCursor(String),
    /// Options that parse but cannot work; the message names the option.
    #[error("{0}")]
    Options(String),
}

impl Error {
    /// A store error while doing `action` on `path`.
    pub(crate) fn store(
        action: &'static str,
        path: impl ToString,
        source: object_store::Error,
    ) -> Self {
        Self::Store {
            action,
            path: path.to_string(),
            source,
        }
    }

    /// The kind the host acts on.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Store { source, .. } => store_kind(source),
            Self::BadUuid(_) | Self::DateOutOfRange(_) | Self::BadCursor(_) | Self::Options(_) => {
                ErrorKind::InvalidInput
            }
            Self::BadPointer { .. } | Self::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}

/// Whether a not-found error is about the bucket or container rather than the object: then
/// "not stored" would be a lie, and the operator must create the bucket.
pub(crate) fn is_missing_bucket(err: &object_store::Error) -> bool {
    let text = chain_text(err);
    [
        "NoSuchBucket",
        "ContainerNotFound",
        "The specified bucket does not exist",
    ]
    .iter()
    .any(|marker| text.contains(marker))
}

/// The kind for an object_store error.
fn store_kind(err: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    match err {
        E::NotFound { .. } => ErrorKind::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => ErrorKind::Unauthorized,
        E::Precondition { .. } | E::AlreadyExists { .. } => ErrorKind::Conflict,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => ErrorKind::InvalidInput,
        E::Generic { .. } => generic_kind(err),
        // Not modified (never asked for), not implemented, a failed join: a bug here.
        _ => ErrorKind::Internal,
    }
}

/// The kind for a `Generic` error, from what its cause chain holds.
fn generic_kind(err: &object_store::Error) -> ErrorKind {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = cause {
        // A connection refused, reset or timed out, a response cut short: transient.
        if current.downcast_ref::<HttpError>().is_some() {
            return ErrorKind::Unavailable;
        }
        // The local store: the operating system's answer decides.
        if let Some(io_err) = current.downcast_ref::<io::Error>() {
            return io_kind(io_err);
        }
        cause = current.source();
    }
    let text = chain_text(err);
    if text.contains("Received redirect without LOCATION") {
        // S3 answers a redirect when the bucket is in another region.
        return ErrorKind::InvalidInput;
    }
    match status_in(&text) {
        // Throttling (429, S3's 503 SlowDown), time-outs (408) and server errors: retry later.
        Some(408 | 429) | Some(500..=599) => ErrorKind::Unavailable,
        // Any other refusal of the request itself (a bad bucket name, a document over the
        // service's limit, a malformed signature from a wrong region): retrying cannot help.
        Some(400..=499) => ErrorKind::InvalidInput,
        // No status (a body that reports an error in a 200, an unexpected answer): assume the
        // service is in trouble, which the host retries a bounded number of times.
        _ => ErrorKind::Unavailable,
    }
}

/// The kind for an I/O error of the local store, with the cases that matter for a directory
/// chosen explicitly.
fn io_kind(err: &io::Error) -> ErrorKind {
    match err.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            ErrorKind::Unauthorized
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorKind::Unavailable,
        // A directory vanished under a concurrent delete or a mount went away: the next
        // attempt recreates it.
        io::ErrorKind::NotFound => ErrorKind::Unavailable,
        io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory => ErrorKind::InvalidInput,
        other => ErrorKind::from_io(other),
    }
}

/// The error and every cause, as one line.
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

/// The HTTP status object_store printed (`status code: 503 Service Unavailable`), if any.
fn status_in(text: &str) -> Option<u16> {
    let (_, after) = text.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}

/// What an operator should do about an error of this kind.
fn hint(err: &Error) -> Option<&'static str> {
    let Error::Store { source, .. } = err else {
        return None;
    };
    match store_kind(source) {
        ErrorKind::Unauthorized => Some(
            "check the credentials (aws_access_key_id/aws_secret_access_key, store_options, or \
             the store's environment variables) and that they may read and write the bucket \
             and prefix",
        ),
        ErrorKind::NotFound if is_missing_bucket(source) => Some(
            "the bucket or container does not exist: create it (this plugin does not create \
             buckets) or fix aws_bucket / url",
        ),
        ErrorKind::InvalidInput => Some(
            "the service refused the request: check aws_region, endpoint_url and the bucket \
             name",
        ),
        ErrorKind::Unavailable => {
            Some("the store is unreachable, slow or throttling; the host retries later")
        }
        _ => None,
    }
}

impl From<Error> for StorageError {
    fn from(err: Error) -> Self {
        let kind = err.kind();
        let message = match hint(&err) {
            Some(hint) => format!("{err}; {hint}"),
            None => err.to_string(),
        };
        StorageError::new(kind, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(source: impl StdError + Send + Sync + 'static) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(source),
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Text(String);

    fn kind(err: object_store::Error) -> ErrorKind {
        StorageError::from(Error::store("writing", "p/k", err)).kind()
    }

    #[test]
    fn statuses_map_to_kinds() {
        let status = |code: &str| {
            kind(generic(Text(format!(
                "Error performing PUT http://h/b/k in 3ms, after 3 retries - Server returned \
                 non-2xx status code: {code}: <Error/>"
            ))))
        };
        assert_eq!(status("503 Service Unavailable"), ErrorKind::Unavailable);
        assert_eq!(status("500 Internal Server Error"), ErrorKind::Unavailable);
        assert_eq!(status("429 Too Many Requests"), ErrorKind::Unavailable);
        assert_eq!(status("408 Request Timeout"), ErrorKind::Unavailable);
        assert_eq!(status("400 Bad Request"), ErrorKind::InvalidInput);
        assert_eq!(status("413 Payload Too Large"), ErrorKind::InvalidInput);
        assert_eq!(
            kind(generic(Text("no status".into()))),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn variants_map_to_kinds() {
        let boxed = || -> Box<dyn StdError + Send + Sync> { Box::new(Text("x".into())) };
        let path = || "p/k".to_owned();
        assert_eq!(
            kind(object_store::Error::PermissionDenied {
                path: path(),
                source: boxed()
            }),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            kind(object_store::Error::Unauthenticated {
                path: path(),
                source: boxed()
            }),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            kind(object_store::Error::Precondition {
                path: path(),
                source: boxed()
            }),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind(object_store::Error::AlreadyExists {
                path: path(),
                source: boxed()
            }),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind(object_store::Error::NotFound {
                path: path(),
                source: boxed()
            }),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn local_io_errors_map_by_their_kind() {
        let io = |k: io::ErrorKind| kind(generic(io::Error::from(k)));
        assert_eq!(io(io::ErrorKind::PermissionDenied), ErrorKind::Unauthorized);
        assert_eq!(io(io::ErrorKind::StorageFull), ErrorKind::Unavailable);
        assert_eq!(io(io::ErrorKind::NotADirectory), ErrorKind::InvalidInput);
        assert_eq!(io(io::ErrorKind::Other), ErrorKind::Internal);
    }

    #[test]
    fn messages_carry_a_remedy() {
        let err = StorageError::from(Error::store(
            "writing",
            "p/k",
            object_store::Error::PermissionDenied {
                path: "p/k".into(),
                source: Box::new(Text("AccessDenied".into())),
            },
        ));
        assert!(err.message().contains("p/k"), "{err}");
        assert!(err.message().contains("credentials"), "{err}");
        let missing = object_store::Error::NotFound {
            path: "p/k".into(),
            source: Box::new(Text("<Code>NoSuchBucket</Code>".into())),
        };
        assert!(is_missing_bucket(&missing));
        let err = StorageError::from(Error::store("writing", "p/k", missing));
        assert!(err.message().contains("create it"), "{err}");
    }

    #[test]
    fn input_errors_are_not_retried() {
        for err in [
            Error::BadUuid("../x".into()),
            Error::BadCursor("x".into()),
            Error::Options("invalid option url: x".into()),
            Error::DateOutOfRange("+10000-01-01".into()),
        ] {
            assert_eq!(StorageError::from(err).kind(), ErrorKind::InvalidInput);
        }
        let err = Error::BadPointer {
            path: "lookup/x.txt".into(),
            body: "junk".into(),
        };
        assert_eq!(StorageError::from(err).kind(), ErrorKind::Internal);
    }
}
