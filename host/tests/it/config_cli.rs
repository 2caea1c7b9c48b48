//! `vcon-host config check` and how a broken config is refused before anything starts.

use crate::support::{run, Scratch};

#[test]
fn the_default_config_checks_clean() {
    let default =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.yml")).unwrap();
    let scratch = Scratch::with_config(&default);
    let (code, out) = run(scratch.host().args(["config", "check"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("OK: 2 storages, 1 links, 1 chains (1 enabled)"),
        "{out}"
    );
}

#[test]
fn a_yaml_error_names_file_and_line() {
    let scratch = Scratch::with_config("storages:\n  a: {module: storage.file\nchains: [\n");
    let (code, out) = run(scratch.host().args(["config", "check"]));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("config.yml:"), "{out}");
}

#[test]
fn a_chain_naming_a_missing_storage_is_refused_with_its_line() {
    let scratch = Scratch::with_config(
        "storages:\n  a: {module: storage.memory}\nchains:\n  main:\n    links: []\n    storages:\n      - a\n      - nope\n    ingress_lists: [in]\n",
    );
    let (code, out) = run(scratch.host().args(["config", "check"]));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("config.yml:8"), "{out}");
    assert!(out.contains("nope"), "{out}");
}

#[test]
fn a_module_with_no_plugin_lists_the_plugins_found() {
    let scratch = Scratch::with_config(
        "storages:\n  a: {module: storage.nosuchdb}\nchains:\n  main: {links: [], storages: [a], ingress_lists: [in]}\n",
    );
    let (code, out) = run(scratch.host().args(["config", "check"]));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("config.yml:2"), "{out}");
    assert!(out.contains("no plugin named 'nosuchdb'"), "{out}");
    assert!(out.contains("memory"), "lists what was found: {out}");
}

#[test]
fn get_refuses_a_non_uuid_before_touching_anything() {
    let scratch = Scratch::with_config("storages:\n  a: {module: storage.memory}\n");
    let (code, out) = run(scratch.host().args(["get", "../../etc/passwd"]));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("is not a UUID"), "{out}");
}
