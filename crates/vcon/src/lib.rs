//! The vCon document: parse, validate, and extract what every storage backend indexes.
//!
//! [`parse`] takes the JSON bytes of a vCon and answers the fields backends index (uuid,
//! `created_at`, `updated_at`, subject, party identifiers), or every problem found, each named
//! by its JSON path:
//!
//! ```
//! let doc = br#"{"uuid": "018f2b9c-6a4e-7c1d-9f00-0123456789ab", "subject": null,
//!               "created_at": "2024-03-01T12:00:00Z", "x-vendor": {"kept": true}}"#;
//! let vcon = vcon::parse(doc).unwrap();
//! assert_eq!(vcon.uuid, "018f2b9c-6a4e-7c1d-9f00-0123456789ab");
//! assert_eq!(vcon.subject, None);
//!
//! let err = vcon::parse(br#"{"uuid": "nope", "dialog": [{"duration": -1}]}"#).unwrap_err();
//! assert!(err.to_string().contains("dialog[0].duration: must be a number >= 0"));
//! ```
//!
//! # Why the bytes are not rebuilt
//!
//! The host stores the document exactly as received, so unknown keys, key order and number
//! formatting survive every backend. This crate therefore never builds a document tree: it
//! reads the few fields it checks straight from the bytes (borrowing strings where it can) and
//! skips everything else, which keeps a 5 KB vCon in the low microseconds.
//!
//! # What is checked
//!
//! The Python vCon Server's ingest model, where it checks something (see [`rules`]); and what
//! real documents vary in is tolerated: no `vcon` version, no `created_at`, a `null` subject,
//! extra keys, `mediatype` for `mimetype`. The uuid is the one hard requirement.

mod error;
mod parse;
pub mod rules;
mod timestamp;

pub use error::{Problem, VconError};
pub use parse::{parse, parse_with_scan, parse_with_serde, ParsedVcon, PartyIds};
pub use timestamp::Timestamp;
