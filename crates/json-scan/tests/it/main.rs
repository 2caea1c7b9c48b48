//! `json-scan` against serde_json: it may refuse what serde_json accepts, never accept what
//! serde_json refuses, and its members are the spans serde_json's `RawValue` captures.
#![allow(clippy::unwrap_used)]

mod cases;
mod compact;
mod mutations;

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The shared test vCons (`../shared/vcons` beside the repository, or `VCON_TEST_DATA`).
pub(crate) fn shared() -> PathBuf {
    let dir = std::env::var_os("VCON_TEST_DATA").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/vcons"
            ))
        },
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "{} is missing: the shared test vCons sit beside the repository",
        dir.display()
    );
    dir
}

/// A top-level object as serde_json reads it: every member in order, duplicates kept.
struct Pairs<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_map(PairsVisitor)
    }
}

/// Checks the contract on `text`: the AVX2 scan and the portable one agree, and whatever they
/// accept serde_json accepts, with the same members. Answers whether the scan accepted.
pub(crate) fn check(text: &str) -> bool {
    let compacted = check_compact(text.as_bytes());
    let portable = json_scan::object_members_portable(text);
    if json_scan::accelerated() {
        assert_eq!(
            json_scan::object_members(text),
            portable,
            "AVX2 and portable scans differ on {text:?}"
        );
    }
    let Some(members) = portable else {
        return false;
    };
    let pairs = match serde_json::from_str::<Pairs<'_>>(text) {
        Ok(pairs) => pairs.0,
        Err(err) => panic!("the scan accepted what serde_json refuses ({err}): {text:?}"),
    };
    let scanned: Vec<(&str, &str)> = members.iter().map(|m| (m.key, m.value)).collect();
    let read: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_ref(), v.get())).collect();
    assert_eq!(scanned, read, "members differ on {text:?}");
    // Valid JSON stays the same JSON without its whitespace.
    if let Some(compacted) = compacted {
        let compacted = std::str::from_utf8(&compacted).unwrap();
        let before: serde_json::Value = serde_json::from_str(text).unwrap();
        let after: serde_json::Value = serde_json::from_str(compacted)
            .unwrap_or_else(|err| panic!("compacting {text:?} broke it ({err}): {compacted:?}"));
        assert_eq!(before, after, "compacting changed {text:?}");
        assert!(json_scan::object_members_portable(compacted).is_some());
    }
    true
}

/// Whitespace outside strings dropped, one byte at a time: what [`json_scan::compact`] must
/// answer on any input. A backslash escapes the next byte wherever it is, as in the masks.
fn compact_reference(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for &byte in text {
        let is_escaped = std::mem::take(&mut escaped);
        if !is_escaped {
            match byte {
                b'\\' => escaped = true,
                b'"' => in_string = !in_string,
                _ => {}
            }
        }
        if in_string || !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(byte);
        }
    }
    (out.len() < text.len()).then_some(out)
}

/// The fast and portable compaction agree with [`compact_reference`] on any bytes; answers it.
pub(crate) fn check_compact(text: &[u8]) -> Option<Vec<u8>> {
    let expected = compact_reference(text);
    assert_eq!(
        json_scan::compact(text),
        expected,
        "fast compaction of {:?}",
        String::from_utf8_lossy(text)
    );
    assert_eq!(
        json_scan::compact_portable(text),
        expected,
        "portable compaction of {:?}",
        String::from_utf8_lossy(text)
    );
    expected
}
