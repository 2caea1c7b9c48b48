//! `json-scan` against serde_json: it may refuse what serde_json accepts, never accept what
//! serde_json refuses, and its members are the spans serde_json's `RawValue` captures.
#![allow(clippy::unwrap_used)]

mod cases;
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
    true
}
