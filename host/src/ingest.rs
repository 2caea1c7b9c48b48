//! Turning document bytes into a hot-store vCon: validate with `crates/vcon`, extract the index
//! fields once (plugins never re-parse), and fill what a real-world document may lack.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::broker::HotVcon;

/// Now, in microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Validates a document and extracts its index fields. A document without `created_at` is
/// dated `first_stored_us` (when the host first stored it), without `updated_at` by its
/// `created_at`. The bytes are kept as they are.
pub fn to_hot(bytes: Vec<u8>, first_stored_us: i64) -> Result<HotVcon, vcon::VconError> {
    let parsed = vcon::parse(&bytes)?;
    let (created_at_us, created_at_offset_s) =
        parsed.created_at.map_or((first_stored_us, 0), |t| {
            (t.unix_micros(), t.offset_seconds())
        });
    Ok(HotVcon {
        uuid: parsed.uuid,
        updated_at_us: parsed.updated_at.map_or(created_at_us, |t| t.unix_micros()),
        created_at_us,
        created_at_offset_s,
        subject: parsed.subject,
        json: Arc::from(bytes),
    })
}

/// Re-extracts the index fields after links changed a vCon. The uuid must not change, and a
/// document that lacked `created_at` keeps the date it was first stored with.
pub fn reindex(previous: &HotVcon, json: Arc<[u8]>) -> Result<HotVcon, String> {
    let parsed = vcon::parse(&json).map_err(|err| err.to_string())?;
    if parsed.uuid != previous.uuid {
        return Err(format!(
            "a link changed the uuid from {} to {}",
            previous.uuid, parsed.uuid
        ));
    }
    let (created_at_us, created_at_offset_s) = parsed.created_at.map_or(
        (previous.created_at_us, previous.created_at_offset_s),
        |t| (t.unix_micros(), t.offset_seconds()),
    );
    Ok(HotVcon {
        uuid: parsed.uuid,
        updated_at_us: parsed.updated_at.map_or(created_at_us, |t| t.unix_micros()),
        created_at_us,
        created_at_offset_s,
        subject: parsed.subject,
        json,
    })
}
