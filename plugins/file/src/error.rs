//! The plugin's own errors, and the one place that decides which [`ErrorKind`] the host sees
//! for each (and so whether it retries, dead-letters or refuses).

use std::io;
use std::path::PathBuf;

use plugin_sdk::{ErrorKind, StorageError};

/// What went wrong, with the path or value involved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A file-system call failed on `path`.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("writing", "renaming ... to").
        action: String,
        /// The file or directory involved.
        path: PathBuf,
        /// The error from the operating system.
        source: io::Error,
    },
    /// A document over `max_file_size`.
    #[error(
        "vCon {uuid} is {size} bytes, over max_file_size ({limit} bytes): raise max_file_size in \
         this storage's options (0 means no limit) if documents this large are expected"
    )]
    TooLarge {
        /// The vCon.
        uuid: String,
        /// Its uncompressed size.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A uuid that is not canonical, refused before it becomes part of a path.
    #[error(
        "refusing uuid {0:?}: the file storage only accepts canonical lowercase UUIDs \
         (8-4-4-4-12 hex digits), which are safe in a file name"
    )]
    BadUuid(String),
    /// The base path exists and is not a directory.
    #[error(
        "the storage path {} exists and is not a directory: set the option `path` to a \
         directory (it is created if missing)", .0.display()
    )]
    NotADirectory(PathBuf),
    /// A `.json.gz` file that is not valid gzip.
    #[error(
        "cannot decompress {}: {source}; the file is damaged or not gzip (restore it from a \
         backup or delete it)", path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        source: io::Error,
    },
    /// A list cursor this storage did not hand out.
    #[error("invalid list cursor {0:?}: pass the `next` value of the previous page")]
    BadCursor(String),
    /// Options that parse but cannot work.
    #[error("{0}")]
    Options(String),
}

impl Error {
    /// An I/O error while doing `action` on `path`.
    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        Self::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }

    /// The kind the host acts on.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { source, .. } => io_kind(source),
            Self::TooLarge { .. }
            | Self::BadUuid(_)
            | Self::NotADirectory(_)
            | Self::BadCursor(_)
            | Self::Options(_) => ErrorKind::InvalidInput,
            Self::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}

/// The kind for an I/O error: the SDK's mapping, with the cases that matter for a directory
/// chosen explicitly.
fn io_kind(err: &io::Error) -> ErrorKind {
    match err.kind() {
        // Not allowed to write here: an operator must fix ownership or the mount.
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            ErrorKind::Unauthorized
        }
        // A full disk or quota: retrying after space is freed succeeds.
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorKind::Unavailable,
        // A directory vanished under us (a concurrent delete pruned it, a mount went away):
        // the next attempt recreates it.
        io::ErrorKind::NotFound | io::ErrorKind::StaleNetworkFileHandle => ErrorKind::Unavailable,
        // `path` (or a parent) is a file, or a name is too long: the configuration is wrong.
        io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::InvalidFilename => ErrorKind::InvalidInput,
        other => ErrorKind::from_io(other),
    }
}

/// What an operator should do about an I/O error of this kind.
fn io_hint(err: &io::Error) -> Option<&'static str> {
    match err.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Some(
            "the host's user needs read and write access to the storage directory (option \
             `path`) and everything under it",
        ),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            Some("free space on that file system or raise the quota; the host retries")
        }
        io::ErrorKind::NotADirectory => {
            Some("a file is in the way: the option `path` and its parents must be directories")
        }
        _ => None,
    }
}

impl From<Error> for StorageError {
    fn from(err: Error) -> Self {
        let kind = err.kind();
        let message = match &err {
            Error::Io { source, .. } => match io_hint(source) {
                Some(hint) => format!("{err}; {hint}"),
                None => err.to_string(),
            },
            _ => err.to_string(),
        };
        StorageError::new(kind, message)
    }
}

/// Adds the action and path to an I/O result.
pub(crate) trait IoContext<T> {
    /// `action` on `path` failed.
    fn at(self, action: &str, path: &std::path::Path) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &str, path: &std::path::Path) -> Result<T, Error> {
        self.map_err(|source| Error::io(action, path, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(kind: io::ErrorKind) -> ErrorKind {
        StorageError::from(Error::io("writing", "/d/x", io::Error::from(kind))).kind()
    }

    #[test]
    fn io_kinds() {
        assert_eq!(
            kind_of(io::ErrorKind::PermissionDenied),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            kind_of(io::ErrorKind::ReadOnlyFilesystem),
            ErrorKind::Unauthorized
        );
        assert_eq!(kind_of(io::ErrorKind::StorageFull), ErrorKind::Unavailable);
        assert_eq!(
            kind_of(io::ErrorKind::QuotaExceeded),
            ErrorKind::Unavailable
        );
        assert_eq!(kind_of(io::ErrorKind::NotFound), ErrorKind::Unavailable);
        assert_eq!(
            kind_of(io::ErrorKind::NotADirectory),
            ErrorKind::InvalidInput
        );
        assert_eq!(kind_of(io::ErrorKind::TimedOut), ErrorKind::Unavailable);
        assert_eq!(kind_of(io::ErrorKind::Other), ErrorKind::Internal);
    }

    #[test]
    fn messages_name_the_path_and_the_remedy() {
        let err = StorageError::from(Error::io(
            "creating",
            "/data/vcons/2024",
            io::Error::from(io::ErrorKind::PermissionDenied),
        ));
        assert!(err.message().contains("/data/vcons/2024"), "{err}");
        assert!(err.message().contains("option `path`"), "{err}");
        let err = StorageError::from(Error::io(
            "writing",
            "/data/vcons/x",
            io::Error::from(io::ErrorKind::StorageFull),
        ));
        assert!(err.message().contains("free space"), "{err}");
    }

    #[test]
    fn input_errors_are_not_retried() {
        let err = StorageError::from(Error::TooLarge {
            uuid: "u".into(),
            size: 11,
            limit: 10,
        });
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("11 bytes") && err.message().contains("10 bytes"));
        assert_eq!(
            StorageError::from(Error::BadUuid("../x".into())).kind(),
            ErrorKind::InvalidInput
        );
    }
}
