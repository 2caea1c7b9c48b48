//! How values cross the wire, in PostgreSQL's binary format: timestamps as microseconds, JSON
//! documents as text inside `jsonb`, both without an intermediate type.
//!
//! - [`Micros`] is one instant for both `timestamptz` and `timestamp` columns: the two have the
//!   same binary form (microseconds since 2000-01-01), read as UTC. So a table of the Python
//!   server, whose columns are `timestamp` (without time zone), gets naive UTC values from the
//!   same code, with no session time zone in between.
//! - [`Jsonb`] sends a document's text as `jsonb` (a version byte, then the text): the server
//!   parses it once, and nothing is built or copied on this side.
//! - [`Document`] reads a `jsonb` column back as its text.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

type BoxError = Box<dyn StdError + Sync + Send>;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// An instant in microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Micros(pub(crate) i64);

impl Micros {
    /// `Some` when the instant can be written (PostgreSQL's own range is checked by the server;
    /// this only refuses what would overflow the conversion).
    pub(crate) fn checked(unix_us: i64) -> Option<Self> {
        unix_us.checked_sub(PG_EPOCH_US).map(|_| Self(unix_us))
    }
}

impl ToSql for Micros {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let pg = self
            .0
            .checked_sub(PG_EPOCH_US)
            .ok_or("timestamp out of range")?;
        out.put_i64(pg);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ || *ty == Type::TIMESTAMP
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Micros {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let bytes: [u8; 8] = raw.try_into().map_err(|_| "a timestamp is 8 bytes")?;
        let pg = i64::from_be_bytes(bytes);
        // ±infinity are i64::MAX/MIN: saturate rather than fail.
        Ok(Self(pg.saturating_add(PG_EPOCH_US)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ || *ty == Type::TIMESTAMP
    }
}

/// A JSON document's text, sent as `jsonb` (or `json`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Jsonb<'a>(pub(crate) &'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if *ty == Type::JSONB {
            // jsonb's binary input: format version 1, then the text.
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}

/// A `jsonb`, `json` or text column read as the document's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Document(pub(crate) Vec<u8>);

impl<'a> FromSql<'a> for Document {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, text)) => Ok(Self(text.to_vec())),
                _ => Err("unknown jsonb binary format version".into()),
            }
        } else {
            Ok(Self(raw.to_vec()))
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON || *ty == Type::TEXT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_microseconds_since_2000() {
        let mut out = BytesMut::new();
        Micros(PG_EPOCH_US + 1)
            .to_sql(&Type::TIMESTAMPTZ, &mut out)
            .unwrap();
        assert_eq!(&out[..], &1_i64.to_be_bytes());
        let back = Micros::from_sql(&Type::TIMESTAMP, &out).unwrap();
        assert_eq!(back, Micros(PG_EPOCH_US + 1));
        assert!(Micros::checked(i64::MIN).is_none());
        assert!(Micros::checked(0).is_some());
        assert!(<Micros as ToSql>::accepts(&Type::TIMESTAMP));
        assert!(!<Micros as ToSql>::accepts(&Type::DATE));
    }

    #[test]
    fn jsonb_is_a_version_byte_then_text() {
        let mut out = BytesMut::new();
        Jsonb(r#"{"a":1}"#).to_sql(&Type::JSONB, &mut out).unwrap();
        assert_eq!(&out[..], b"\x01{\"a\":1}");
        let doc = Document::from_sql(&Type::JSONB, &out).unwrap();
        assert_eq!(doc.0, br#"{"a":1}"#);
        assert!(Document::from_sql(&Type::JSONB, b"\x02{}").is_err());
        assert_eq!(Document::from_sql(&Type::TEXT, b"{}").unwrap().0, b"{}");
    }
}
