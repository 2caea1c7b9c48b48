//! The workspace's storage contract (`crates/conformance`) against the built plugin.

use serde_json::json;

use crate::fixtures::{plugin_path, server, with};

#[test]
fn passes_the_conformance_suite() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let report = conformance::Suite::new(plugin_path())
        .options(server.options(&table.name))
        .destructive(true)
        .run();
    println!("{report}");
    report.assert_passed();
}

#[test]
fn passes_without_tls_and_with_a_small_pool() {
    let Some(server) = server() else { return };
    let table = server.fresh_table();
    let report = conformance::Suite::new(plugin_path())
        .options(with(
            server.options(&table.name),
            json!({"sslmode": "disable", "pool_size": 2, "create": true}),
        ))
        .destructive(true)
        .large_document_bytes(2_000_000)
        .run();
    println!("{report}");
    report.assert_passed();
}
