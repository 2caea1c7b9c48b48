//! The workspace's storage contract (`crates/conformance`) against the built plugin and the
//! emulator.

use serde_json::json;
use sxt_emulator::API_KEY;

use crate::fixtures::{create_table, emulator, open, options_with_key, plugin_path, TABLE};

#[test]
fn passes_the_conformance_suite_with_minted_biscuits() {
    let (emulator, keys) = emulator();
    let options = options_with_key(&emulator, &keys);
    // The table is created by the plugin itself (provision), as an operator would.
    open(&options).provision(false).unwrap();
    let report = conformance::Suite::new(plugin_path())
        .options(options)
        .destructive(true)
        .run();
    println!("{report}");
    report.assert_passed();
}

#[test]
fn passes_the_conformance_suite_with_configured_biscuits() {
    let (emulator, keys) = emulator();
    create_table(&emulator, &keys);
    let options = json!({
        "api_key": API_KEY,
        "table_name": TABLE.to_lowercase(),
        "write_biscuit": keys.biscuit(&["dml_insert", "dml_update", "dml_delete"], TABLE),
        "read_biscuit": keys.biscuit(&["dql_select"], TABLE),
        "api_url": emulator.api_url(),
        "auth_url": emulator.auth_url(),
    });
    let report = conformance::Suite::new(plugin_path())
        .options(options)
        .destructive(true)
        .run();
    println!("{report}");
    report.assert_passed();
    // Without the private key it cannot create tables, and says so in its capabilities.
    let provision = report
        .results()
        .iter()
        .find(|r| r.name == "provision_is_repeatable")
        .unwrap();
    assert!(
        matches!(provision.outcome, conformance::CheckOutcome::Skipped(_)),
        "{:?}",
        provision.outcome
    );
}
