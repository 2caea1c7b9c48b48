//! The form a vCon entering at ingress is stored in: its JSON without the whitespace between
//! tokens, unless `host.keep_whitespace` is set.
//!
//! Why at ingress, once: the document is then written to the broker, answered to the client,
//! and written by every storage of its chains, so each byte dropped here is dropped from all of
//! them. A pretty-printed vCon is about half indentation (cat1: 275,840 bytes, 140,410
//! without). Only whitespace goes: every key, string and number keeps its exact text, and
//! members keep their order and duplicates, so what is stored is the same JSON as what was
//! posted ([`json_scan::compact`] is tested for that against serde_json on every shared vCon
//! and on mutations of them).

use bytes::Bytes;

/// `json` as it is stored: compacted, or as it came when `keep_whitespace` is set or it has no
/// whitespace to drop (then the same buffer, not a copy). Call it on a validated document only:
/// dropping whitespace from invalid JSON can make it look valid (`[1 2]` becomes `[12]`).
pub fn stored_form(json: Bytes, keep_whitespace: bool) -> Bytes {
    if keep_whitespace {
        return json;
    }
    json_scan::compact(&json).map_or(json, Bytes::from)
}
