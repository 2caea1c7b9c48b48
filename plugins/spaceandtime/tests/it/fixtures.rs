//! Finding the plugin, starting an emulator with a table, and opening storages on it.

use std::path::PathBuf;

use plugin_loader::{CallError, PluginLibrary, StorageInstance, VconRecord};
use serde_json::{json, Value};
use sxt_emulator::{Emulator, TableKeys, API_KEY};

/// The table every test uses.
pub(crate) const TABLE: &str = "VCON.VCONS";

/// The built plugin file.
pub(crate) fn plugin_path() -> PathBuf {
    conformance::test_data::built_plugin("spaceandtime")
}

/// The loaded plugin.
pub(crate) fn library() -> &'static PluginLibrary {
    PluginLibrary::load(&plugin_path(), None).unwrap()
}

/// An emulator with the schema created, and the table's keys.
pub(crate) fn emulator() -> (Emulator, TableKeys) {
    let emulator = Emulator::start().unwrap();
    emulator.create_schema("VCON").unwrap();
    (emulator, TableKeys::generate())
}

/// Options pointing at the emulator, with the private key (so the plugin mints every biscuit).
pub(crate) fn options_with_key(emulator: &Emulator, keys: &TableKeys) -> Value {
    json!({
        "api_key": API_KEY,
        "table_name": TABLE,
        "biscuit_private_key": keys.private_hex,
        "api_url": emulator.api_url(),
        "auth_url": emulator.auth_url(),
        "timeout": 5,
        "retries": 2,
    })
}

/// Creates the table through the emulator directly, as an operator would by hand.
pub(crate) fn create_table(emulator: &Emulator, keys: &TableKeys) {
    emulator
        .execute(
            &format!(
                "CREATE TABLE {TABLE} (UUID VARCHAR, VCON VARCHAR, CREATED_AT VARCHAR, \
                 SUBJECT VARCHAR, VCON_JSON VARCHAR, PRIMARY KEY (UUID)) \
                 WITH \"public_key={},access_type=permissioned\"",
                keys.public_hex
            ),
            &[keys.biscuit(&["ddl_create"], TABLE)],
        )
        .unwrap();
}

/// A storage opened with `options`.
pub(crate) fn open(options: &Value) -> StorageInstance {
    library()
        .open(&options.to_string())
        .unwrap_or_else(|err| panic!("opening with {options}: {err}"))
}

/// Opening with `options` fails: the error.
pub(crate) fn open_error(options: &Value) -> String {
    match library().open(&options.to_string()) {
        Ok(_) => panic!("opening with {options} succeeded"),
        Err(err) => err.to_string(),
    }
}

/// A small vCon document.
pub(crate) fn doc(uuid: &str, subject: Option<&str>) -> Vec<u8> {
    json!({
        "vcon": "0.0.1",
        "uuid": uuid,
        "created_at": "2024-03-01T12:00:00.000+00:00",
        "subject": subject,
        "parties": [{"tel": "+15551230000"}],
        "dialog": [{"type": "text", "body": "say \"hi\" \\ back\\slash \n newline"}],
    })
    .to_string()
    .into_bytes()
}

/// The record a host would pass for `doc`.
pub(crate) fn record<'a>(
    uuid: &'a str,
    json: &'a [u8],
    subject: Option<&'a str>,
) -> VconRecord<'a> {
    VconRecord::new(uuid, json, 1_709_294_400_000_000).with_subject(subject)
}

/// A fresh uuid (v4, from the conformance crate's generator).
pub(crate) fn uuid() -> String {
    conformance::fresh_uuid()
}

/// Saves and reads back, asserting equality.
pub(crate) fn round_trip(storage: &StorageInstance) -> Result<(), CallError> {
    let id = uuid();
    let json = doc(&id, Some("round trip"));
    storage.save(&record(&id, &json, Some("round trip")))?;
    assert_eq!(storage.get(&id)?.as_deref(), Some(json.as_slice()));
    Ok(())
}

/// The large recorded call of the shared test data (270 KB).
pub(crate) fn large_call() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vcons/reference-fixtures/valid/cat1_vcon.json"
    ))
    .unwrap()
}
