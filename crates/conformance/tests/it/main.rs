//! The suite against real plugin files: it passes the good ones and fails the bad ones.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use conformance::{CheckOutcome, Suite};

fn dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")).join(default),
        PathBuf::from,
    )
}

fn plugin(name: &str) -> PathBuf {
    let path = dir("VCON_PLUGIN_DIR", "plugins").join(format!("libvcon_storage_{name}.so"));
    assert!(
        path.is_file(),
        "{} missing: run `cargo xtask test`",
        path.display()
    );
    path
}

fn test_plugin(name: &str) -> PathBuf {
    let path =
        dir("VCON_TEST_PLUGIN_DIR", "test-plugins").join(format!("libtest_plugin_{name}.so"));
    assert!(
        path.is_file(),
        "{} missing: run `cargo xtask test`",
        path.display()
    );
    path
}

#[test]
fn the_memory_plugin_conforms() {
    let report = Suite::new(plugin("memory")).destructive(true).run();
    println!("{report}");
    report.assert_passed();
    // It declares almost everything, so almost nothing is skipped.
    let skipped: Vec<_> = report
        .results()
        .iter()
        .filter(|r| matches!(r.outcome, CheckOutcome::Skipped(_)))
        .map(|r| r.name)
        .collect();
    assert_eq!(skipped, ["provision_is_repeatable"], "{report}");
}

#[test]
fn a_save_only_plugin_conforms_with_skips() {
    let report = Suite::new(test_plugin("misbehaving")).run();
    report.assert_passed();
    assert!(
        report.to_string().contains("does not declare get"),
        "{report}"
    );
}

#[test]
fn a_plugin_that_panics_fails_with_the_reason() {
    let report = Suite::new(test_plugin("misbehaving"))
        .options(serde_json::json!({ "on_save": "panic" }))
        .run();
    assert!(!report.passed(), "{report}");
    let text = report.to_string();
    assert!(text.contains("FAIL  save_then_get_round_trips"), "{text}");
    assert!(text.contains("panicked in save"), "{text}");
}

#[test]
fn a_foreign_file_fails_the_load_check() {
    let report = Suite::new(test_plugin("foreign_abi_v2")).run();
    assert!(!report.passed());
    assert!(report.to_string().contains("FAIL  load"), "{report}");
}

#[test]
fn bad_options_fail_the_open_check() {
    let report = Suite::new(plugin("memory"))
        .options(serde_json::json!({ "max_entries": -1 }))
        .run();
    assert!(!report.passed());
    let text = report.to_string();
    assert!(text.contains("FAIL  open"), "{text}");
    assert!(text.contains("max_entries"), "{text}");
}
