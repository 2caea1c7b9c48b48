//! Whatever arrives, `parse` answers: never a panic, never a stack overflow.

use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        let keys = prop_oneof![
            Just("uuid".to_owned()),
            Just("dialog".to_owned()),
            Just("parties".to_owned()),
            Just("created_at".to_owned()),
            Just("duration".to_owned()),
            Just("tel".to_owned()),
            "[a-z]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = vcon::parse(&bytes);
    }

    #[test]
    fn arbitrary_json(value in json_value()) {
        let _ = vcon::parse(value.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_values_in_checked_fields(value in json_value(), field in prop_oneof![
        Just("uuid"), Just("created_at"), Just("subject"), Just("parties"), Just("dialog"),
        Just("analysis")]) {
        let doc = serde_json::json!({ "uuid": "018f2b9c-6a4e-7c1d-9f00-0123456789ab", field: value });
        let _ = vcon::parse(doc.to_string().as_bytes());
        let dialog = serde_json::json!({ "uuid": "018f2b9c-6a4e-7c1d-9f00-0123456789ab",
            "parties": [{}], "dialog": [{ "duration": value.clone(), "parties": value.clone(), "url": value }] });
        let _ = vcon::parse(dialog.to_string().as_bytes());
    }
}

#[test]
fn deep_nesting_never_overflows() {
    for depth in [1_000, 100_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // In a key nobody checks, it is skipped without recursion: stored verbatim.
        let doc = format!(r#"{{"uuid": "018f2b9c-6a4e-7c1d-9f00-0123456789ab", "x": {nested}}}"#);
        assert!(vcon::parse(doc.as_bytes()).is_ok());
        // In a checked field it is refused by the JSON reader's nesting limit.
        let doc = format!(
            r#"{{"uuid": "018f2b9c-6a4e-7c1d-9f00-0123456789ab", "dialog": [{{"parties": {nested}}}]}}"#
        );
        assert!(vcon::parse(doc.as_bytes()).is_err());
        assert!(vcon::parse("[".repeat(depth).as_bytes()).is_err());
        assert!(vcon::parse(format!("{{\"a\":{}", "{\"a\":".repeat(depth)).as_bytes()).is_err());
    }
}
