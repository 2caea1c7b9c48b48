//! Hand-picked documents: what must be accepted, what must not, and the block boundaries.

use crate::{check, shared};

#[test]
fn every_shared_vcon_is_accepted_with_serde_jsons_members() {
    let mut paths: Vec<_> = std::fs::read_dir(shared().join("fake"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.push(shared().join("reference-fixtures/valid/cat1_vcon.json"));
    assert!(paths.len() > 600);
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        // `check` compares with serde_json; a valid document must also be accepted.
        assert!(check(&text), "{} was not accepted", path.display());
    }
}

#[test]
fn the_reference_invalid_documents_are_judged_as_serde_json_judges_them() {
    for entry in std::fs::read_dir(shared().join("reference-fixtures/invalid")).unwrap() {
        let path = entry.unwrap().path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            check(&text);
        }
    }
}

/// The fast path answers exactly where the CPU has it, and answers `None` elsewhere, so the
/// caller's serde path takes over (everything else here runs the portable classifier too).
#[test]
fn object_members_answers_where_the_cpu_has_avx2() {
    let answer = json_scan::object_members("{\"a\": 1}");
    if json_scan::accelerated() {
        let member = json_scan::Member {
            key: "a",
            value: "1",
        };
        assert_eq!(answer, Some(vec![member]));
    } else {
        eprintln!("NOTE: no AVX2 on this CPU: object_members always answers None here");
        assert_eq!(answer, None);
    }
}

#[test]
fn valid_objects_are_accepted() {
    for text in [
        "{}",
        " {} ",
        "{\"a\":1}",
        "{\"a\" : [ ] , \"b\" : { } }",
        "{\"a\":[1,-0,0.5,1e5,1E+5,-1.25e-3,true,false,null,\"s\",{},[]]}",
        "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\"}",
        // A lone surrogate is only an error once decoded; skipped, serde_json lets it be.
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"é ✓ 😀\"}",
        "{\"a\":1,\"a\":2}",
        "\t\r\n{\"k\":\n[\n1\n]\n}\n",
    ] {
        assert!(check(text), "refused {text:?}");
    }
}

#[test]
fn invalid_json_and_non_objects_are_refused() {
    for text in [
        "",
        " ",
        "[]",
        "1",
        "\"a\"",
        "{",
        "}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,\"a\":1}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":1e}",
        "{\"a\":-}",
        "{\"a\":tru}",
        "{\"a\":truex}",
        "{\"a\":nul}",
        "{\"a\":\"x\"1}",
        "{\"a\":1\"x\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"new\nline\"}",
        "{\"a\":\"unterminated}",
        "{\"a\":[}",
        "{\"a\":{]}",
        "{\"a\":1}}",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "{\"a\":\\\"x\"}",
        "{\"a\":1\\}",
        "{'a':1}",
        "{a:1}",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
        "\u{feff}{}",
    ] {
        assert!(!check(text), "accepted {text:?}");
    }
}

#[test]
fn a_top_level_key_with_an_escape_is_left_to_the_caller() {
    // Valid JSON, but the key's text is not its name: the scan does not answer for it.
    assert!(!check("{\"u\\u0075id\":1}"));
    // Below the top level, escaped keys are plain strings.
    assert!(check("{\"a\":{\"u\\u0075id\":1}}"));
}

/// Escapes, strings and numbers placed across the 64-byte block boundaries, where the scan
/// carries its state from one block to the next.
#[test]
fn tokens_across_block_boundaries() {
    let pieces = [
        "\"\\\\\"",
        "\"\\\"\"",
        "\"\\\\\\\"\"",
        "\"\\u00e9\"",
        "\"ab\\\\\\\\\"",
        "12345.6789e-12",
        "true",
        "null",
        "\"é😀\"",
        "[[],{}]",
    ];
    for piece in pieces {
        for pad in 0..140 {
            let text = format!("{{\"k\":[{}{piece}]}}", " ".repeat(pad));
            assert!(check(&text), "refused {text:?}");
            let text = format!("{{\"{}\":{piece}}}", "k".repeat(pad));
            assert!(check(&text), "refused {text:?}");
        }
    }
    for broken in ["\"\\\"", "\"\\\\\\\"", "\"\\u00\"", "1.e5", "\"a\nb\""] {
        for pad in 0..140 {
            let text = format!("{{\"k\":[{}{broken}]}}", " ".repeat(pad));
            assert!(!check(&text), "accepted {text:?}");
        }
    }
}

#[test]
fn deep_nesting_is_scanned_without_recursion() {
    let depth = 100_000;
    let text = format!("{{\"x\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    assert!(check(&text));
    let unbalanced = format!("{{\"x\":{}{}}}", "[".repeat(depth), "]".repeat(depth - 1));
    assert!(!check(&unbalanced));
}
