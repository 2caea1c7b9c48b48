//! The workspace's storage contract (`crates/conformance`) against the built plugin.

use serde_json::json;

use crate::fixtures::plugin_path;

#[test]
fn passes_the_conformance_suite() {
    for synchronous in ["normal", "full"] {
        let dir = tempfile::tempdir().unwrap();
        let report = conformance::Suite::new(plugin_path())
            .options(json!({
                "path": dir.path().join("vcons.sqlite"),
                "synchronous": synchronous,
            }))
            .destructive(true)
            .run();
        println!("{report}");
        report.assert_passed();
    }
}
