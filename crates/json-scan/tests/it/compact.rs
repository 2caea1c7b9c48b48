//! `compact`: whitespace between tokens goes, everything else stays, on every CPU path.

use proptest::prelude::*;

use crate::{check_compact, shared};

fn compacted(text: &str) -> Option<String> {
    check_compact(text.as_bytes()).map(|bytes| String::from_utf8(bytes).unwrap())
}

#[test]
fn whitespace_between_tokens_goes_and_whitespace_in_strings_stays() {
    assert_eq!(
        compacted("{ \"a b\" : [ 1 ,\t2 ] ,\r\n \"c\\\" d\" : \" x \\\\\" }").as_deref(),
        Some("{\"a b\":[1,2],\"c\\\" d\":\" x \\\\\"}")
    );
    // Only whitespace: all of it goes.
    assert_eq!(compacted(" \n\t\r ").as_deref(), Some(""));
}

#[test]
fn text_without_such_whitespace_is_not_copied() {
    assert_eq!(compacted("{\"a\":\"b c\",\"d\":[1,2]}"), None);
    assert_eq!(compacted(""), None);
    // Longer than a block, still nothing to drop.
    let long = format!("{{\"pad\":\"{}\"}}", " ".repeat(200));
    assert_eq!(compacted(&long), None);
}

#[test]
fn escapes_and_strings_across_block_boundaries() {
    // A backslash as the last byte of a block escapes the first of the next; a string opened
    // in one block and closed in another keeps its spaces.
    for shift in 0..70 {
        let text = format!(
            "{{{}\"k\": \"{}\\\" {}\" , \"z\" : 1 }}",
            " ".repeat(shift),
            "a".repeat(shift),
            " ".repeat(shift % 7)
        );
        let expected = format!(
            "{{\"k\":\"{}\\\" {}\",\"z\":1}}",
            "a".repeat(shift),
            " ".repeat(shift % 7)
        );
        assert_eq!(
            compacted(&text).as_deref(),
            Some(expected.as_str()),
            "shift {shift}"
        );
    }
}

#[test]
fn the_shared_vcons_compact_to_the_same_json() {
    // `check` compacts each document and compares the result with serde_json's reading of the
    // original; this looks at the size too.
    let cat1 =
        std::fs::read_to_string(shared().join("reference-fixtures/valid/cat1_vcon.json")).unwrap();
    let compact = compacted(&cat1).unwrap();
    assert!(crate::check(&cat1));
    assert!(
        compact.len() * 3 < cat1.len() * 2,
        "cat1 is pretty-printed: {} of {} bytes are left",
        compact.len(),
        cat1.len()
    );
    // Compacting twice changes nothing more.
    assert_eq!(compacted(&compact), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any bytes at all, valid JSON or not: the fast and portable paths agree with the
    /// byte-at-a-time reference, and nothing panics.
    #[test]
    fn any_bytes_compact_as_the_reference_does(
        bytes in proptest::collection::vec(
            prop::sample::select(b"\"\\ \n\t\r{}[]:,a1\xc3\xa9".to_vec()),
            0..300,
        )
    ) {
        check_compact(&bytes);
    }
}
