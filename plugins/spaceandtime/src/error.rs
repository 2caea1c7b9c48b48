//! The plugin's own errors, and the one place that decides which [`ErrorKind`] the host sees
//! for each (and so whether it retries, dead-letters or refuses).

use plugin_sdk::{ErrorKind, StorageError};

use crate::sql::VARCHAR_LIMIT;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Options that parse but cannot work (a missing key, a bad table name).
    #[error("{0}")]
    Options(String),
    /// A uuid that is not 8-4-4-4-12 hex digits, refused before it goes into SQL.
    #[error("refusing uuid {0:?}: expected 8-4-4-4-12 hex digits")]
    BadUuid(String),
    /// A value over the VARCHAR limit.
    #[error(
        "vCon {uuid} is too large for Space and Time: its {column} is {chars} characters, over \
         the size limit of a VARCHAR column ({limit} characters); store large vCons (recorded \
         calls, long transcripts) in another storage",
        limit = VARCHAR_LIMIT
    )]
    TooLarge {
        /// The vCon.
        uuid: String,
        /// The column the value was for.
        column: &'static str,
        /// The value's length in characters.
        chars: usize,
    },
    /// A NUL character, which a SQL literal cannot safely hold.
    #[error("a NUL character (U+0000) cannot be stored in Space and Time text")]
    Nul,
    /// A NUL character in one column of a vCon.
    #[error(
        "vCon {uuid} cannot be stored: its {column} holds a NUL character (U+0000), which \
         Space and Time text cannot hold"
    )]
    NulIn {
        /// The vCon.
        uuid: String,
        /// The column.
        column: &'static str,
    },
    /// The HTTP layer's error (connection, time-out, status), already of the right kind.
    #[error("{0}")]
    Http(StorageError),
    /// The API key was refused.
    #[error(
        "Space and Time refused the API key ({0}); check api_key (or SXT_API_KEY) and that \
         auth_url is the Gateway"
    )]
    BadApiKey(String),
    /// A statement answered 401 even with a fresh access token, or the token expired with
    /// `auto_reconnect: false`.
    #[error("Space and Time refused the access token: {0}")]
    Token(String),
    /// A statement refused for lack of a biscuit capability (403).
    #[error(
        "Space and Time refused {operation} on {resource}: {detail}; the {which} biscuit must \
         hold sxt:capability(\"{operation}\", \"{resource}\") signed by the table's key \
         (see docs/plugins/spaceandtime.md)"
    )]
    Forbidden {
        /// The capability needed.
        operation: &'static str,
        /// The table's resource id.
        resource: String,
        /// Which option's biscuit was sent (`read`, `write`, `DDL`).
        which: &'static str,
        /// The service's words.
        detail: String,
    },
    /// The table does not exist.
    #[error(
        "the table {0} does not exist in Space and Time: create it (vcon-host storage \
         provision, with biscuit_private_key) or by hand as docs/plugins/spaceandtime.md shows"
    )]
    NoTable(String),
    /// A statement refused as invalid (400).
    #[error("Space and Time refused the statement ({status}): {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The service's words.
        detail: String,
    },
    /// An answer of a shape the plugin does not know.
    #[error("unexpected answer from Space and Time: {0}")]
    Unexpected(String),
    /// The biscuit private key cannot mint.
    #[error("{0}")]
    Biscuit(String),
}

impl Error {
    /// The kind the host acts on.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::Options(_)
            | Self::BadUuid(_)
            | Self::TooLarge { .. }
            | Self::Nul
            | Self::NulIn { .. }
            | Self::Refused { .. }
            | Self::Biscuit(_) => ErrorKind::InvalidInput,
            Self::Http(err) => err.kind(),
            Self::BadApiKey(_) | Self::Token(_) | Self::Forbidden { .. } => ErrorKind::Unauthorized,
            Self::NoTable(_) => ErrorKind::NotFound,
            Self::Unexpected(_) => ErrorKind::Internal,
        }
    }

    /// Whether this is the engine's duplicate-key refusal of an `INSERT`.
    pub(crate) fn is_duplicate_key(&self) -> bool {
        matches!(self, Self::Refused { detail, .. } if detail.to_ascii_lowercase().contains("duplicate key"))
    }

    /// Whether a `CREATE` was refused because the thing exists.
    pub(crate) fn is_already_exists(&self) -> bool {
        matches!(self, Self::Refused { detail, .. } if detail.to_ascii_lowercase().contains("already exists"))
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
        let too_large = StorageError::from(Error::TooLarge {
            uuid: "u".into(),
            column: "VCON_JSON",
            chars: 270_000,
        });
        assert_eq!(too_large.kind(), ErrorKind::InvalidInput);
        assert!(
            too_large.message().contains("270000 characters"),
            "{too_large}"
        );
        assert!(too_large.message().contains("65536"), "{too_large}");
        assert_eq!(
            StorageError::from(Error::NoTable("S.T".into())).kind(),
            ErrorKind::NotFound
        );
        let forbidden = StorageError::from(Error::Forbidden {
            operation: "dql_select",
            resource: "vcon.vcons".into(),
            which: "read",
            detail: "no".into(),
        });
        assert_eq!(forbidden.kind(), ErrorKind::Unauthorized);
        assert!(forbidden.message().contains("read biscuit"), "{forbidden}");
        let unavailable = StorageError::unavailable("down");
        assert_eq!(
            StorageError::from(Error::from(unavailable.clone())),
            unavailable
        );
    }

    #[test]
    fn recognises_engine_messages() {
        let dup = Error::Refused {
            status: 400,
            detail: "Duplicate key during INSERT [key=x]".into(),
        };
        assert!(dup.is_duplicate_key() && !dup.is_already_exists());
        let exists = Error::Refused {
            status: 400,
            detail: "Table VCON.VCONS already exists".into(),
        };
        assert!(exists.is_already_exists() && !exists.is_duplicate_key());
    }
}
