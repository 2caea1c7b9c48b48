//! The workspace's storage contract (`crates/conformance`) against the built plugin, through the
//! real loader.

use serde_json::json;

use crate::fixtures::{plugin_path, server, with};

#[test]
fn passes_the_conformance_suite() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let report = conformance::Suite::new(plugin_path())
        .options(server.options(&prefix))
        // `clear` removes only this test's prefix.
        .destructive(true)
        .run();
    println!("{report}");
    report.assert_passed();
}

#[test]
fn passes_without_expiry_and_with_one_connection() {
    let Some(server) = server() else { return };
    let prefix = server.fresh_prefix();
    let report = conformance::Suite::new(plugin_path())
        .options(with(
            server.options(&prefix),
            json!({"expires": 0, "pool_size": 1, "command_timeout": "10"}),
        ))
        .destructive(true)
        .large_document_bytes(2_000_000)
        .run();
    println!("{report}");
    report.assert_passed();
}
