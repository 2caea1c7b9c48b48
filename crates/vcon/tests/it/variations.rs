//! Real-world variation is tolerated; the uuid is the one hard requirement.

fn ok(doc: &str) -> vcon::ParsedVcon {
    vcon::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

fn refused(doc: &str) -> String {
    vcon::parse(doc.as_bytes()).expect_err(doc).to_string()
}

const UUID: &str = "018f2b9c-6a4e-7c1d-9f00-0123456789ab";

#[test]
fn a_bare_uuid_is_enough() {
    let v = ok(&format!(r#"{{"uuid": "{UUID}"}}"#));
    assert_eq!(v.uuid, UUID);
    assert_eq!((v.version, v.created_at, v.subject), (None, None, None));
}

#[test]
fn null_subject_unknown_keys_meta_and_mediatype_are_fine() {
    let v = ok(&format!(
        r#"{{"uuid": "{UUID}", "subject": null, "meta": {{"a": 1}}, "metadata": [], "x": [[[]]],
            "dialog": [{{"type": "text", "mediatype": "text/plain", "parties": [0, [1, 0]]}}],
            "parties": [{{"name": "A"}}, {{"mailto": "b@example.com"}}]}}"#
    ));
    assert_eq!(v.subject, None);
    assert_eq!(v.parties[1].mailto.as_deref(), Some("b@example.com"));
}

#[test]
fn epoch_created_at_is_read_as_seconds() {
    let v = ok(&format!(
        r#"{{"uuid": "{UUID}", "created_at": 1709294400.25}}"#
    ));
    assert_eq!(v.created_at.unwrap().unix_micros(), 1_709_294_400_250_000);
}

#[test]
fn an_uppercase_uuid_is_accepted_and_canonicalised() {
    assert_eq!(
        ok(&format!(r#"{{"uuid": "{}"}}"#, UUID.to_uppercase())).uuid,
        UUID
    );
}

#[test]
fn a_uuid_that_could_escape_a_path_is_refused() {
    for bad in [
        "../../etc/passwd",
        "",
        "018f2b9c6a4e7c1d9f000123456789ab",
        "{018f2b9c-6a4e-7c1d-9f00-0123456789ab}",
        "018f2b9c-6a4e-7c1d-9f00-0123456789a/",
    ] {
        let m = refused(&format!(
            r#"{{"uuid": {}}}"#,
            serde_json::Value::String(bad.into())
        ));
        assert!(m.contains("uuid: must be a UUID"), "{bad}: {m}");
    }
    assert!(refused(r#"{"uuid": 42}"#).contains("uuid: must be a string, found number 42"));
    assert!(refused(r#"{"uuid": null}"#).contains("uuid: is required"));
}

#[test]
fn not_json_and_not_an_object_say_so() {
    assert!(refused("{").contains("not valid JSON at line 1"));
    assert!(refused("[1]").contains("must be a JSON object, found a list"));
    assert!(vcon::parse(&[0xff, 0xfe])
        .unwrap_err()
        .to_string()
        .contains("not UTF-8"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = vcon::parse(br#"{"uuid": "x", "created_at": "soon", "parties": [{"tel": "no"}]}"#)
        .unwrap_err();
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["uuid", "created_at", "parties[0].tel"]);
}

#[test]
fn problems_keep_the_fields_order_when_a_list_is_not_a_list_of_objects() {
    // A list element that is not an object sends the document to the second, raw pass: its
    // problems must still come in the same order as when the lists read at once.
    let err = vcon::parse(
        br#"{"uuid": "x", "created_at": "soon", "parties": [{"tel": "no"}, 7],
            "dialog": [{"duration": -1}, "text"]}"#,
    )
    .unwrap_err();
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "uuid",
            "created_at",
            "parties[1]",
            "parties[0].tel",
            "dialog[1]",
            "dialog[0].duration"
        ]
    );
}

#[test]
fn nested_party_references_and_loose_attachments_are_accepted() {
    // Valid lists are read in the first pass; a stray non-object in `attachments` (not read
    // element by element) must not change what a valid document yields.
    let doc = format!(
        r#"{{"uuid": "{UUID}", "subject": "s", "parties": [{{"tel": "+15551234567", "name": "A"}}, {{"mailto": "b@example.com"}}],
            "dialog": [{{"type": "text", "parties": [0, [1]], "mimetype": "text/plain"}}], "attachments": [1, "x"]}}"#
    );
    let parsed = ok(&doc);
    assert_eq!(parsed.parties.len(), 2);
    assert_eq!(parsed.parties[0].tel.as_deref(), Some("+15551234567"));
    assert_eq!(parsed.parties[1].mailto.as_deref(), Some("b@example.com"));
    assert_eq!(parsed.subject.as_deref(), Some("s"));
}
