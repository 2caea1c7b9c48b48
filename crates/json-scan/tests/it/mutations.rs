//! Every single-byte change to real documents: whatever the scan accepts, serde_json accepts.

use proptest::prelude::*;

use crate::{check, shared};

/// Bytes that matter to JSON's grammar, and a few that must never appear where they land.
const ALPHABET: &[u8] = b"{}[]:,\"\\ \n\t\r0123456789-+.eEtrufalsn/bx\x00\x1f\x7f";

fn seeds() -> Vec<String> {
    let fake = shared().join("fake");
    let mut names: Vec<_> = std::fs::read_dir(&fake)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let mut seeds: Vec<String> = names
        .iter()
        .take(3)
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    seeds.push(
        "{\"a\":\"\\\\\\\"\\u00e9\\n\",\"b\":[1,-2.5e+3,true,false,null,{\"c\":[]}],\"d\":{}}"
            .to_owned(),
    );
    seeds
}

/// Each position of each seed, deleted or replaced by each byte of [`ALPHABET`].
#[test]
fn every_single_byte_deletion_and_replacement() {
    let mut accepted = 0;
    let mut cases = 0;
    for seed in seeds() {
        let bytes = seed.as_bytes();
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for at in 0..bytes.len() {
            let mut deleted = bytes.to_vec();
            deleted.remove(at);
            variants.push(deleted);
            for &byte in ALPHABET {
                if byte != bytes[at] {
                    let mut replaced = bytes.to_vec();
                    replaced[at] = byte;
                    variants.push(replaced);
                }
            }
        }
        for variant in variants {
            if let Ok(text) = std::str::from_utf8(&variant) {
                cases += 1;
                accepted += usize::from(check(text));
            }
        }
    }
    // Many changes (a digit for a digit, a space for a newline) leave valid JSON: the scan
    // must accept those, not only refuse.
    assert!(cases > 100_000, "{cases} cases");
    assert!(accepted > cases / 20, "only {accepted} of {cases} accepted");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Several changes at once, anywhere in a seed.
    #[test]
    fn random_edits(seed in 0..4_usize, edits in prop::collection::vec((any::<prop::sample::Index>(), 0..ALPHABET.len(), 0..3_u8), 1..6)) {
        let seeds = seeds();
        let mut bytes = seeds[seed % seeds.len()].as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let at = at.index(bytes.len().max(1));
            match kind {
                0 if !bytes.is_empty() => { bytes.remove(at); }
                1 => bytes.insert(at.min(bytes.len()), ALPHABET[byte]),
                _ if !bytes.is_empty() => bytes[at] = ALPHABET[byte],
                _ => {}
            }
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            check(text);
        }
    }

    /// Arbitrary JSON values, as serde_json writes them, pretty and compact, inside an object.
    #[test]
    fn arbitrary_json_is_accepted(value in json_value()) {
        let doc = serde_json::json!({ "v": value, "w": [value] });
        prop_assert!(check(&doc.to_string()));
        prop_assert!(check(&serde_json::to_string_pretty(&doc).unwrap()));
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(Into::into),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Into::into),
        ".{0,40}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
