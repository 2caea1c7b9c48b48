//! The hot-store vCon: the document bytes plus the index fields extracted once at ingress, so
//! neither the broker nor the plugins re-parse it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// A vCon in the hot store, with the index fields extracted at ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotVcon {
    /// The canonical uuid.
    pub uuid: String,
    /// The document as the host stores it: as received, less the whitespace between its tokens
    /// unless the host keeps it (`host.keep_whitespace`), or as the links last changed it.
    /// `Bytes`, so a buffer is kept as it is: a request body with no whitespace to drop is not
    /// copied (for a 270 KB vCon a copy is a quarter of a megabyte of memory traffic).
    pub json: Bytes,
    /// `created_at` (or when it was first stored), microseconds since the epoch.
    pub created_at_us: i64,
    /// The offset `created_at` was written in, in seconds.
    pub created_at_offset_s: i32,
    /// `updated_at` (or `created_at`), microseconds since the epoch.
    pub updated_at_us: i64,
    /// The subject, if any.
    pub subject: Option<String>,
    /// The search index keys of its parties ([`search_keys`]). Empty when read back from a
    /// broker that does not keep them beside the document; the index itself is kept.
    pub search_keys: Vec<String>,
    /// The document, already written by [`crate::Broker::stage_document`] of the broker it
    /// is ingested into (which then records that file instead of writing it again). It must
    /// have been staged from these very `json` bytes: the broker checks only that the length
    /// matches, since a checksum would cost what staging saves.
    pub staged: Option<Arc<crate::StagedDocument>>,
}

/// Now, in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The search index keys of a vCon's parties, with the Python server's names: `tel:{tel}`,
/// `mailto:{addr}`, `name:{name}`. Values are exact strings, as there (no normalisation), and
/// each key appears once.
pub fn search_keys(parsed: &vcon::ParsedVcon) -> Vec<String> {
    let mut keys: Vec<String> = parsed
        .parties
        .iter()
        .flat_map(|p| {
            [("tel", &p.tel), ("mailto", &p.mailto), ("name", &p.name)]
                .into_iter()
                .filter_map(|(kind, value)| {
                    value
                        .as_deref()
                        .filter(|v| !v.is_empty())
                        .map(|v| format!("{kind}:{v}"))
                })
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

impl HotVcon {
    /// Validates a document and extracts its index fields. A document without `created_at` is
    /// dated `first_stored_us` (when the host first stored it), without `updated_at` by its
    /// `created_at`. The bytes are kept as they are.
    pub fn from_json(json: Bytes, first_stored_us: i64) -> Result<Self, vcon::VconError> {
        let parsed = vcon::parse(&json)?;
        let (created_at_us, created_at_offset_s) =
            parsed.created_at.map_or((first_stored_us, 0), |t| {
                (t.unix_micros(), t.offset_seconds())
            });
        Ok(Self::with_fields(
            &parsed,
            json,
            created_at_us,
            created_at_offset_s,
        ))
    }

    /// Re-extracts the index fields after links changed a vCon. The uuid must not change, and a
    /// document that lacked `created_at` keeps the date it was first stored with.
    pub fn reindex(&self, json: Bytes) -> Result<Self, String> {
        let parsed = vcon::parse(&json).map_err(|err| err.to_string())?;
        if parsed.uuid != self.uuid {
            return Err(format!(
                "a link changed the uuid from {} to {}",
                self.uuid, parsed.uuid
            ));
        }
        let (created_at_us, created_at_offset_s) = parsed
            .created_at
            .map_or((self.created_at_us, self.created_at_offset_s), |t| {
                (t.unix_micros(), t.offset_seconds())
            });
        Ok(Self::with_fields(
            &parsed,
            json,
            created_at_us,
            created_at_offset_s,
        ))
    }

    fn with_fields(
        parsed: &vcon::ParsedVcon,
        json: Bytes,
        created_at_us: i64,
        created_at_offset_s: i32,
    ) -> Self {
        Self {
            uuid: parsed.uuid.clone(),
            updated_at_us: parsed.updated_at.map_or(created_at_us, |t| t.unix_micros()),
            created_at_us,
            created_at_offset_s,
            subject: parsed.subject.clone(),
            search_keys: search_keys(parsed),
            json,
            staged: None,
        }
    }
}
