//! The workspace's storage contract (`crates/conformance`) against the built plugin.

use serde_json::json;

use crate::fixtures::plugin_path;

#[test]
fn passes_the_conformance_suite_dated_and_flat() {
    for (organize_by_date, compression) in [(true, false), (false, true)] {
        let tmp = tempfile::tempdir().unwrap();
        let report = conformance::Suite::new(plugin_path())
            .options(json!({
                "path": tmp.path().join("vcons"),
                "organize_by_date": organize_by_date,
                "compression": compression,
            }))
            .destructive(true)
            .run();
        println!("{report}");
        report.assert_passed();
    }
}
