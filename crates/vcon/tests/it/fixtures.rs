//! Every shared document: the valid ones accepted, each invalid one refused with its reason.

use crate::shared;

#[test]
fn all_601_fake_vcons_are_accepted() {
    let mut count = 0;
    for entry in std::fs::read_dir(shared().join("fake")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&path).unwrap();
            let parsed = vcon::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(parsed.uuid, value["uuid"].as_str().unwrap().to_lowercase());
            count += 1;
        }
    }
    assert_eq!(count, 601);
}

#[test]
fn cat1_is_accepted_with_its_fields() {
    let bytes = std::fs::read(shared().join("reference-fixtures/valid/cat1_vcon.json")).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let parsed = vcon::parse(&bytes).unwrap();
    assert_eq!(parsed.uuid, value["uuid"].as_str().unwrap());
    assert_eq!(parsed.version.as_deref(), value["vcon"].as_str());
    let created = vcon::Timestamp::parse_str(value["created_at"].as_str().unwrap()).unwrap();
    assert_eq!(parsed.created_at, Some(created));
    assert_eq!(parsed.subject.as_deref(), value["subject"].as_str());
    assert_eq!(
        parsed.parties.len(),
        value["parties"].as_array().unwrap().len()
    );
    assert_eq!(
        parsed.parties[0].tel.as_deref(),
        value["parties"][0]["tel"].as_str()
    );
}

fn refusal(name: &str) -> String {
    let path = shared().join("reference-fixtures/invalid").join(name);
    let bytes = std::fs::read(&path).unwrap();
    let err = vcon::parse(&bytes).expect_err(name);
    err.to_string()
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "expected {part:?} in: {message}");
    }
}

#[test]
fn bad_dialog_types() {
    let m = refusal("bad_dialog_types.json");
    assert_names(
        &m,
        &[
            "dialog[0].duration: must be a number >= 0, found string \"long\"",
            "dialog[0].mimetype: must be a string, found number 12345",
        ],
    );
}

#[test]
fn bad_duration() {
    assert_names(
        &refusal("bad_duration.json"),
        &["dialog[0].duration: must be a number >= 0, found -30"],
    );
}

#[test]
fn bad_mimetype() {
    assert_names(
        &refusal("bad_mimetype.json"),
        &["dialog[0].mimetype: \"not a valid mimetype!\" is not a media type"],
    );
}

#[test]
fn bad_party_ref() {
    assert_names(
        &refusal("bad_party_ref.json"),
        &["dialog[0].parties: refers to party 99 but the vCon has 2 parties"],
    );
}

#[test]
fn bad_url() {
    assert_names(
        &refusal("bad_url.json"),
        &["dialog[0].url: \"not-a-url\" is not a URL"],
    );
}

#[test]
fn empty_vcon() {
    assert_names(
        &refusal("empty_vcon.json"),
        &[
            "uuid: must be a UUID",
            "found an empty string",
            "created_at: must be an ISO 8601 date-time",
        ],
    );
}

#[test]
fn invalid_dialog_url() {
    assert_names(
        &refusal("invalid_dialog_url.json"),
        &["dialog[0].url: \"not_a_valid_url_$$##\" is not a URL"],
    );
}

#[test]
fn missing_uuid_and_vcon_version() {
    assert_names(
        &refusal("missing_uuid_and_vcon_version.json"),
        &["uuid: is required"],
    );
}

#[test]
fn null_dialog_string_analysis() {
    assert_names(
        &refusal("null_dialog_string_analysis.json"),
        &[
            "dialog: must be a list, found null",
            "analysis: must be a list, found string",
        ],
    );
}

#[test]
fn null_parties() {
    assert_names(
        &refusal("null_parties.json"),
        &[
            "parties: must be a list, found null",
            "dialog[0].duration: must be a number >= 0",
        ],
    );
}

#[test]
fn out_of_range_party_indices() {
    assert_names(
        &refusal("out_of_range_party_indices.json"),
        &["dialog[0].parties: refers to parties 5, 9 but the vCon has 2 parties"],
    );
}

#[test]
fn every_invalid_fixture_has_a_test() {
    let names: Vec<String> = std::fs::read_dir(shared().join("reference-fixtures/invalid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        11,
        "a new invalid fixture needs its own test: {names:?}"
    );
}
