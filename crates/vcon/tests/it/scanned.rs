//! `parse` reads large documents with `json-scan` first; it must answer exactly what the
//! serde-only reader answers, valid or not. `parse_with_scan` forces that path at any size.

use proptest::prelude::*;

use crate::shared;

fn same_answer(bytes: &[u8]) {
    let serde_only = format!("{:?}", vcon::parse_with_serde(bytes));
    for (reader, answer) in [
        ("parse_with_scan", vcon::parse_with_scan(bytes)),
        ("parse", vcon::parse(bytes)),
    ] {
        assert_eq!(
            format!("{answer:?}"),
            serde_only,
            "{reader} on {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

fn documents() -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = [
        "fake",
        "reference-fixtures/invalid",
        "reference-fixtures/valid",
    ]
    .into_iter()
    .flat_map(|dir| std::fs::read_dir(shared().join(dir)).unwrap())
    .map(|e| e.unwrap().path())
    .filter(|p| p.extension().is_some_and(|e| e == "json"))
    .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn every_shared_document_gets_the_serde_answer() {
    let documents = documents();
    assert!(documents.len() > 600);
    for doc in documents {
        same_answer(&doc);
    }
}

/// The ways a document can be wrong that the scan leaves to serde (a key twice, a list that is
/// not a list of objects, an escaped key) or passes on (wrong types in checked fields).
#[test]
fn documents_the_scan_hands_back_get_the_serde_answer() {
    let uuid = "018f2b9c-6a4e-7c1d-9f00-0123456789ab";
    for doc in [
        format!(r#"{{"uuid":"{uuid}","uuid":"{uuid}"}}"#),
        format!(r#"{{"uuid":"{uuid}","parties":[{{}}],"parties":[]}}"#),
        format!(r#"{{"uuid":"{uuid}","parties":null}}"#),
        format!(r#"{{"uuid":"{uuid}","parties":[1,{{}}]}}"#),
        format!(r#"{{"uuid":"{uuid}","dialog":{{}}}}"#),
        format!(r#"{{"u\u0075id":"{uuid}"}}"#),
        format!(r#"{{"uuid":"{uuid}","subject":7,"analysis":{{}},"group":"x"}}"#),
        format!(r#"{{"uuid":"{uuid}","created_at":"soon","dialog":[{{"duration":-1}}]}}"#),
        format!(r#"{{"uuid":"{uuid}","x":[1,2,}}"#),
        format!(r#"{{"uuid":"{uuid}"}} trailing"#),
        r#"{"uuid":"\ud800"}"#.to_owned(),
    ] {
        same_answer(doc.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Edits anywhere in a real vCon: whatever they break, both readers say the same.
    #[test]
    fn edited_vcons_get_the_serde_answer(
        seed in 0..3_usize,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0..3_u8), 1..4),
    ) {
        const ALPHABET: &[u8] = b"{}[]:,\"\\ \n0123456789-.etrufalsn";
        let documents = documents();
        let mut bytes = documents[seed * 97 % documents.len()].clone();
        for (at, byte, kind) in edits {
            let at = at.index(bytes.len().max(1));
            let byte = *byte.get(ALPHABET);
            match kind {
                0 if !bytes.is_empty() => { bytes.remove(at); }
                1 => bytes.insert(at.min(bytes.len()), byte),
                _ if !bytes.is_empty() => bytes[at] = byte,
                _ => {}
            }
        }
        same_answer(&bytes);
    }
}
