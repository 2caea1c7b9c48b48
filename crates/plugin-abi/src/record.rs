//! How one vCon crosses the boundary: borrowed bytes plus the fields every backend indexes.

use abi_stable::std_types::{ROption, RSlice, RStr};
use abi_stable::StableAbi;

/// A vCon handed to a plugin for the duration of one call.
///
/// Everything is borrowed from the host: no copy is made at the call, and the plugin must copy
/// what it keeps. The JSON is passed as bytes, not as structured types, because the vCon spec
/// still moves (field renames between versions), every backend stores the document whole, and
/// unknown keys must survive verbatim. The index fields were extracted and validated by the host
/// once, so plugins neither re-parse nor re-validate them.
#[repr(C)]
#[derive(StableAbi, Copy, Clone, Debug)]
pub struct VconRecord<'a> {
    /// The vCon's uuid, validated by the host as a canonical lowercase hyphenated UUID, so it is
    /// safe in a file name, an object key or a SQL parameter.
    pub uuid: RStr<'a>,
    /// `created_at` in microseconds since the Unix epoch (UTC); when the document has none, the
    /// time the host first stored it.
    pub created_at_us: i64,
    /// The UTC offset `created_at` was written in, in seconds, for backends that file by the
    /// document's local date (the Python file and S3 modules do).
    pub created_at_offset_s: i32,
    /// `updated_at` in microseconds since the Unix epoch, or `created_at_us` when absent.
    pub updated_at_us: i64,
    /// The vCon's subject, when it has one.
    pub subject: ROption<RStr<'a>>,
    /// The document, exactly as received (UTF-8 JSON).
    pub json: RSlice<'a, u8>,
}

impl<'a> VconRecord<'a> {
    /// A record for `uuid` and `json` with both timestamps at `created_at_us` (UTC) and no
    /// subject; chain the `with_*` methods for the rest.
    pub fn new(uuid: &'a str, json: &'a [u8], created_at_us: i64) -> Self {
        Self {
            uuid: RStr::from(uuid),
            created_at_us,
            created_at_offset_s: 0,
            updated_at_us: created_at_us,
            subject: ROption::RNone,
            json: RSlice::from_slice(json),
        }
    }

    /// Sets the UTC offset `created_at` was written in.
    pub fn with_offset(mut self, offset_s: i32) -> Self {
        self.created_at_offset_s = offset_s;
        self
    }

    /// Sets `updated_at`.
    pub fn with_updated_at(mut self, updated_at_us: i64) -> Self {
        self.updated_at_us = updated_at_us;
        self
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: Option<&'a str>) -> Self {
        self.subject = subject.map(RStr::from).into();
        self
    }
}
