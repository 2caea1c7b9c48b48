//! The workspace's storage contract (`crates/conformance`) against the built plugin and the
//! test API.

use serde_json::json;

use crate::plugin_path;
use crate::server::Api;

#[test]
fn passes_the_conformance_suite() {
    let api = Api::start();
    api.require_token("test-token");
    let report = conformance::Suite::new(plugin_path())
        .options(json!({
            "base_url": api.base_url,
            "api_key": "test-token",
            "timeout": 10,
        }))
        .destructive(true)
        .run();
    println!("{report}");
    report.assert_passed();
}

#[test]
fn passes_the_conformance_suite_against_the_wrapped_shape() {
    let api = Api::start();
    api.wrap(true);
    let report = conformance::Suite::new(plugin_path())
        .options(json!({ "base_url": format!("{}/", api.base_url) }))
        .run();
    println!("{report}");
    report.assert_passed();
}
