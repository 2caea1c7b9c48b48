//! Each refusal in the load order, with its message.

use plugin_loader::{LoadError, PluginLibrary, SearchPath, Sha256Pin};

use crate::fixtures::{plugin, test_plugin};

fn refusal(path: &std::path::Path, pin: Option<&Sha256Pin>) -> (LoadError, String) {
    let err = PluginLibrary::load(path, pin).unwrap_err();
    let message = err.to_string();
    assert!(!message.contains('\n'), "refusals are one line: {message}");
    (err, message)
}

#[test]
fn a_missing_file_is_refused_naming_it() {
    let path = std::path::Path::new("/nonexistent/libvcon_storage_nothing.so");
    let (err, message) = refusal(path, None);
    assert!(matches!(err, LoadError::Missing { .. }));
    assert!(
        message.contains("/nonexistent/libvcon_storage_nothing.so"),
        "{message}"
    );
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("cargo xtask build-plugins"), "{message}");
}

#[test]
fn a_system_library_is_not_a_plugin_and_is_not_run() {
    let candidates = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ];
    let path = candidates
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.exists())
        .expect("no libz or libm found to test with");
    let (err, message) = refusal(path, None);
    assert!(matches!(err, LoadError::NotAPlugin { .. }), "{err:?}");
    assert!(message.contains("is not a vcon-host plugin"), "{message}");
    assert!(
        message.contains("exports no abi_stable root module"),
        "{message}"
    );
}

#[test]
fn a_text_file_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libvcon_storage_fake.so");
    std::fs::write(&path, "not an ELF file").unwrap();
    let (err, message) = refusal(&path, None);
    assert!(matches!(err, LoadError::NotAPlugin { .. }), "{err:?}");
    assert!(message.contains("is not a shared library"), "{message}");
}

#[test]
fn a_plugin_built_for_another_abi_major_is_refused() {
    let path = test_plugin("foreign_abi_v2");
    let (err, message) = refusal(&path, None);
    assert!(matches!(err, LoadError::AbiMajorMismatch { .. }), "{err:?}");
    assert!(message.contains("built for plugin ABI 2.0.0"), "{message}");
    assert!(message.contains("this host speaks ABI 1.x"), "{message}");
    assert!(
        message.contains("rebuild the plugin against plugin-sdk 1.x"),
        "{message}"
    );
}

#[test]
fn a_plugin_with_another_layout_is_refused_in_one_line() {
    let path = test_plugin("foreign_layout_mismatch");
    let (err, message) = refusal(&path, None);
    let LoadError::LayoutMismatch { detail, .. } = &err else {
        panic!("expected a layout mismatch, got {err:?}");
    };
    assert!(message.contains("claims plugin ABI 1.0.0"), "{message}");
    assert!(message.contains("types do not match"), "{message}");
    assert!(
        message.contains("expected StoragePlugin, found ForeignPlugin"),
        "names what differs: {message}"
    );
    assert!(message.len() < 600, "the summary stays short: {message}");
    assert!(
        detail.lines().count() > 5,
        "the full report is kept for --verbose"
    );
}

#[test]
fn another_programs_abi_stable_plugin_is_refused() {
    let path = test_plugin("foreign_other_program");
    let (err, message) = refusal(&path, None);
    assert!(
        matches!(err, LoadError::ForeignRootModule { .. }),
        "{err:?}"
    );
    assert!(
        message.contains("exports root module 'image_filter'"),
        "{message}"
    );
    assert!(
        message.contains("not a vcon-host storage plugin"),
        "{message}"
    );
}

#[test]
fn a_name_that_does_not_match_the_config_is_refused() {
    let library = PluginLibrary::load(&plugin("memory"), None).unwrap();
    let message = library.expect_name("postgres").unwrap_err().to_string();
    assert!(message.contains("is plugin 'memory'"), "{message}");
    assert!(
        message.contains("config asks for storage.postgres"),
        "{message}"
    );
    library.expect_name("memory").unwrap();
}

#[test]
fn a_sha256_mismatch_is_refused_before_loading() {
    let path = plugin("memory");
    let wrong = Sha256Pin::parse(&"0".repeat(64)).unwrap();
    let (err, message) = refusal(&path, Some(&wrong));
    assert!(matches!(err, LoadError::ChecksumMismatch { .. }), "{err:?}");
    assert!(
        message.contains(&format!("pins sha256:{}", "0".repeat(64))),
        "{message}"
    );
    assert!(message.contains("has sha256 "), "{message}");
}

#[test]
fn a_matching_sha256_pin_loads() {
    use sha2_digest::hex_sha256;
    let path = plugin("memory");
    let pin = Sha256Pin::parse(&format!("sha256:{}", hex_sha256(&path))).unwrap();
    PluginLibrary::load(&path, Some(&pin)).unwrap();
}

#[test]
fn a_module_not_on_the_search_path_lists_what_is() {
    let dir = plugin("memory").parent().unwrap().to_path_buf();
    let search = SearchPath::new([dir.clone()]);
    assert_eq!(search.find("memory").unwrap(), plugin("memory"));
    let message = search.find("nosuchdb").unwrap_err().to_string();
    assert!(message.contains("no plugin named 'nosuchdb'"), "{message}");
    assert!(
        message.contains("memory"),
        "lists the plugins found: {message}"
    );
}

#[test]
fn bad_options_are_refused_naming_the_key() {
    let library = PluginLibrary::load(&plugin("memory"), None).unwrap();
    let message = library
        .open(r#"{"max_entries": "ten"}"#)
        .unwrap_err()
        .to_string();
    assert!(message.contains("invalid option max_entries"), "{message}");
    let message = library
        .open(r#"{"max_entrys": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(message.contains("max_entrys"), "{message}");
}

/// A tiny sha256 helper so the test computes the pin independently of the loader.
mod sha2_digest {
    pub(crate) fn hex_sha256(path: &std::path::Path) -> String {
        let out = std::process::Command::new("sha256sum")
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

#[test]
#[ignore = "prints every refusal, for reading"]
fn print_refusals() {
    for name in [
        "foreign_abi_v2",
        "foreign_layout_mismatch",
        "foreign_other_program",
    ] {
        println!(
            "{}",
            PluginLibrary::load(&test_plugin(name), None).unwrap_err()
        );
    }
    println!(
        "{}",
        PluginLibrary::load(
            std::path::Path::new("/lib/x86_64-linux-gnu/libm.so.6"),
            None
        )
        .unwrap_err()
    );
}
