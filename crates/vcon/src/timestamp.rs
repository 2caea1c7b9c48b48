//! Instants as vCons write them: RFC 3339 strings with any offset, or epoch numbers.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// An instant plus the UTC offset the document wrote it in.
///
/// The offset matters: the Python file and S3 backends file a vCon under the date of
/// `created_at` in its own offset, so a call at 23:30-05:00 is filed under that day, not the
/// next UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    micros: i64,
    offset_s: i32,
}

impl Timestamp {
    /// Microseconds since the Unix epoch (UTC).
    pub fn unix_micros(self) -> i64 {
        self.micros
    }

    /// The offset from UTC the document used, in seconds (0 for `Z`, naive times and numbers).
    pub fn offset_seconds(self) -> i32 {
        self.offset_s
    }

    /// The instant in the document's own offset.
    pub fn to_datetime(self) -> DateTime<FixedOffset> {
        let offset = FixedOffset::east_opt(self.offset_s).unwrap_or(Utc.fix());
        offset
            .timestamp_micros(self.micros)
            .single()
            .unwrap_or_else(|| offset.timestamp_nanos(0))
    }

    /// Parses what vCons put in `created_at`: RFC 3339 / ISO 8601 with `Z` or an offset, with
    /// or without fractional seconds, a `T` or a space; a naive date-time (read as UTC, as the
    /// Python server stores it); or a bare date (midnight UTC).
    pub fn parse_str(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(Self::from_datetime(t));
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            "%Y-%m-%d %H:%M:%S%.f%:z",
            "%Y-%m-%dT%H:%M:%S%.f%z",
        ] {
            if let Ok(t) = DateTime::parse_from_str(text, format) {
                return Some(Self::from_datetime(t));
            }
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
                return Some(Self::from_datetime(t.and_utc().fixed_offset()));
            }
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Self::from_datetime(t.and_utc().fixed_offset()))
    }

    /// An epoch number in seconds (fractional allowed), as some producers write.
    pub fn from_epoch_seconds(seconds: f64) -> Option<Self> {
        let micros = seconds * 1e6;
        (micros.is_finite() && micros.abs() < 9.2e18).then_some(Self {
            micros: micros as i64,
            offset_s: 0,
        })
    }

    fn from_datetime(t: DateTime<FixedOffset>) -> Self {
        Self {
            micros: t.timestamp_micros(),
            offset_s: t.offset().local_minus_utc(),
        }
    }
}

use chrono::Offset as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_vcons_write() {
        let z = Timestamp::parse_str("2024-03-01T12:00:00Z").unwrap();
        assert_eq!(z.unix_micros(), 1_709_294_400_000_000);
        let off = Timestamp::parse_str("2024-03-01T07:00:00.5-05:00").unwrap();
        assert_eq!(off.unix_micros(), 1_709_294_400_500_000);
        assert_eq!(off.offset_seconds(), -5 * 3600);
        assert_eq!(
            off.to_datetime().format("%Y/%m/%d").to_string(),
            "2024/03/01"
        );
        let naive = Timestamp::parse_str("2024-03-01T12:00:00.123456").unwrap();
        assert_eq!(naive.unix_micros(), 1_709_294_400_123_456);
        assert!(Timestamp::parse_str("2024-03-01 12:00:00+00:00").is_some());
        assert!(Timestamp::parse_str("2024-03-01").is_some());
        assert_eq!(
            Timestamp::from_epoch_seconds(1.5).unwrap().unix_micros(),
            1_500_000
        );
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in ["", "NOT-A-DATE", "2024-13-01T00:00:00Z", "yesterday"] {
            assert!(Timestamp::parse_str(bad).is_none(), "{bad}");
        }
        assert!(Timestamp::from_epoch_seconds(f64::NAN).is_none());
    }
}
