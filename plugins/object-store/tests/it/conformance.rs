//! The workspace's storage contract (`crates/conformance`) against the built plugin, on the
//! S3-compatible server and on a local directory, plain and gzip.

use serde_json::json;

use crate::fixtures::{file_url, plugin_path};
use crate::s3server;

fn run(options: serde_json::Value) {
    let report = conformance::Suite::new(plugin_path())
        .options(options)
        .destructive(true)
        .run();
    println!("{report}");
    report.assert_passed();
}

#[test]
fn conforms_on_the_s3_server_with_the_python_options() {
    let Some(server) = s3server::server() else {
        return;
    };
    let bucket = server.bucket("conf");
    run(server.options(&bucket, "conformance/vcons"));
}

#[test]
fn conforms_on_the_s3_server_by_url_with_gzip() {
    let Some(server) = s3server::server() else {
        return;
    };
    let bucket = server.bucket("conf-gz");
    run(json!({
        "url": format!("s3://{bucket}/gz"),
        "endpoint_url": server.endpoint(),
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "compression": "gzip",
        "max_concurrency": 8,
    }));
}

#[test]
fn conforms_on_a_local_directory() {
    for compression in ["none", "gzip"] {
        let dir = tempfile::tempdir().unwrap();
        run(json!({
            "url": file_url(&dir.path().join("vcons")),
            "compression": compression,
        }));
    }
}
