//! What a host relies on once plugins are loaded.

use plugin_loader::{ErrorKind, PluginLibrary, VconRecord};

use crate::fixtures::{capture_logs, captured_logs, plugin, test_plugin};

const UUID: &str = "018f2b9c-6a4e-7c1d-9f00-0123456789ab";

#[test]
fn two_different_plugins_each_answer_their_own_name() {
    let memory = PluginLibrary::load(&plugin("memory"), None).unwrap();
    let misbehaving = PluginLibrary::load(&test_plugin("misbehaving"), None).unwrap();
    assert_eq!(memory.meta().name, "memory");
    assert_eq!(misbehaving.meta().name, "misbehaving");
    // Loading again gives the same library, not a second copy.
    let again = PluginLibrary::load(&plugin("memory"), None).unwrap();
    assert!(std::ptr::eq(memory, again));
}

#[test]
fn one_plugin_opened_twice_gives_independent_storages() {
    let memory = PluginLibrary::load(&plugin("memory"), None).unwrap();
    let first = memory.open("{}").unwrap();
    let second = memory.open(r#"{"max_entries": 10}"#).unwrap();
    first
        .save(&VconRecord::new(UUID, br#"{"uuid":"x"}"#, 0))
        .unwrap();
    assert!(first.get(UUID).unwrap().is_some());
    assert_eq!(second.get(UUID).unwrap(), None);
    assert_eq!(second.status().unwrap()["max_entries"], 10);
    assert_eq!(first.status().unwrap()["max_entries"], 0);
}

#[test]
fn a_panic_in_save_is_an_internal_error_and_the_process_goes_on() {
    let library = PluginLibrary::load(&test_plugin("misbehaving"), None).unwrap();
    let storage = library.open(r#"{"on_save": "panic"}"#).unwrap();
    let json = br#"{"uuid":"018f2b9c-6a4e-7c1d-9f00-0123456789ab"}"#;
    for _ in 0..3 {
        let err = storage.save(&VconRecord::new(UUID, json, 0)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::INTERNAL);
        assert!(
            err.message.contains("plugin misbehaving panicked in save"),
            "{err}"
        );
        assert!(
            err.message.contains("deliberate panic while saving"),
            "{err}"
        );
        assert!(
            err.message.contains("src/lib.rs"),
            "the location is kept: {err}"
        );
    }
    // The same library still works for a well-behaved instance.
    let fine = library.open(r#"{"on_save": "ok"}"#).unwrap();
    fine.save(&VconRecord::new(UUID, json, 0)).unwrap();
}

#[test]
fn undeclared_operations_are_refused_without_crossing() {
    let library = PluginLibrary::load(&test_plugin("misbehaving"), None).unwrap();
    let storage = library.open("{}").unwrap();
    let err = storage.get(UUID).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNSUPPORTED);
    // Called anyway, the plugin's own default answers the same.
    let raw = storage.raw().get(UUID.into()).into_result().unwrap_err();
    assert_eq!(raw.kind, plugin_abi::ErrorKind::UNSUPPORTED);
}

#[test]
fn a_plugins_tracing_events_appear_in_the_hosts_log() {
    capture_logs();
    let library = PluginLibrary::load(&test_plugin("misbehaving"), None).unwrap();
    library
        .open(r#"{"log": "hello from inside the plugin"}"#)
        .unwrap();
    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("hello from inside the plugin"))
        .unwrap_or_else(|| panic!("plugin event missing from host log:\n{logs}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains("test_plugin_misbehaving"),
        "the plugin's target is kept: {line}"
    );
    assert!(
        line.contains("answer"),
        "structured fields are kept: {line}"
    );
}
