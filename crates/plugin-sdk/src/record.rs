//! The vCon a plugin receives: borrowed JSON bytes and the fields the host extracted.

use chrono::{DateTime, FixedOffset, Offset, TimeZone, Utc};

/// One vCon, borrowed for the duration of a call.
///
/// The host has validated the document and extracted these fields once; a plugin stores
/// [`json`](Self::json) verbatim (unknown keys included) and indexes the fields without parsing.
#[derive(Debug, Clone, Copy)]
pub struct VconRecord<'a> {
    /// The uuid: canonical lowercase hyphenated form, validated by the host, so it is safe in a
    /// path, an object key or a SQL parameter.
    pub uuid: &'a str,
    /// `created_at` in microseconds since the Unix epoch (or when the host first stored it).
    pub created_at_us: i64,
    /// The UTC offset, in seconds, `created_at` was written in.
    pub created_at_offset_s: i32,
    /// `updated_at` in microseconds since the Unix epoch (`created_at_us` when absent).
    pub updated_at_us: i64,
    /// The subject, when the document has one.
    pub subject: Option<&'a str>,
    /// The document, exactly as received.
    pub json: &'a [u8],
}

impl<'a> VconRecord<'a> {
    pub(crate) fn from_abi(record: &plugin_abi::VconRecord<'a>) -> Self {
        Self {
            uuid: record.uuid.as_str(),
            created_at_us: record.created_at_us,
            created_at_offset_s: record.created_at_offset_s,
            updated_at_us: record.updated_at_us,
            subject: record.subject.map(|s| s.as_str()).into_option(),
            json: record.json.as_slice(),
        }
    }

    /// `created_at` in the offset the document used: the date a backend files the vCon under,
    /// as the Python server does.
    pub fn created_at(&self) -> DateTime<FixedOffset> {
        let offset = FixedOffset::east_opt(self.created_at_offset_s).unwrap_or(Utc.fix());
        offset
            .timestamp_micros(self.created_at_us)
            .single()
            .unwrap_or_else(|| offset.timestamp_nanos(0))
    }

    /// `created_at` in UTC.
    pub fn created_at_utc(&self) -> DateTime<Utc> {
        self.created_at().with_timezone(&Utc)
    }

    /// `updated_at` in UTC.
    pub fn updated_at_utc(&self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.updated_at_us)
            .single()
            .unwrap_or_else(|| self.created_at_utc())
    }

    /// The document as UTF-8 text (the host guarantees it is valid JSON, hence UTF-8).
    pub fn json_str(&self) -> &'a str {
        std::str::from_utf8(self.json).unwrap_or_default()
    }

    /// A record for tests and benchmarks of a plugin used in-process, without a host.
    pub fn for_test(uuid: &'a str, json: &'a [u8]) -> Self {
        Self {
            uuid,
            created_at_us: 1_700_000_000_000_000,
            created_at_offset_s: 0,
            updated_at_us: 1_700_000_000_000_000,
            subject: None,
            json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_keeps_the_document_offset() {
        let mut record = VconRecord::for_test("u", b"{}");
        // 2023-11-14T22:13:20Z seen from +05:00 is already the 15th.
        record.created_at_offset_s = 5 * 3600;
        assert_eq!(
            record.created_at().format("%Y/%m/%d").to_string(),
            "2023/11/15"
        );
        assert_eq!(
            record.created_at_utc().format("%Y/%m/%d").to_string(),
            "2023/11/14"
        );
    }
}
