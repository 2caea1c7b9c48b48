//! `vcon-host plugins list` and `plugins check`.

use crate::support::{plugin, plugin_dir, run, test_plugin, vcon_host};

#[test]
fn list_shows_name_version_abi_capabilities_and_file() {
    let (code, out) = run(vcon_host()
        .args(["plugins", "list", "--plugin-dir"])
        .arg(plugin_dir()));
    assert_eq!(code, Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("memory "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("1.0.0"), "{line}");
    assert!(line.contains("get,delete"), "{line}");
    assert!(line.contains("libvcon_storage_memory.so"), "{line}");
}

#[test]
fn list_of_an_empty_directory_says_how_to_build() {
    let empty = tempfile::tempdir().unwrap();
    let (code, out) = run(vcon_host()
        .args(["plugins", "list", "--plugin-dir"])
        .arg(empty.path())
        .env("VCON_PLUGIN_PATH", empty.path()));
    // The build output beside the binary may still hold plugins; only assert when it does not.
    if out.contains("no plugins found") {
        assert_eq!(code, Some(1));
        assert!(out.contains("cargo xtask build-plugins"), "{out}");
    }
}

#[test]
fn check_passes_a_conforming_plugin() {
    let (code, out) = run(vcon_host().args(["plugins", "check"]).arg(plugin("memory")));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("plugin memory 0.1.0 (ABI 1.0.0"), "{out}");
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn check_refuses_a_plugin_built_for_another_abi() {
    let (code, out) = run(vcon_host()
        .args(["plugins", "check"])
        .arg(test_plugin("foreign_abi_v2")));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  load"), "{out}");
    assert!(out.contains("built for plugin ABI 2.0.0"), "{out}");
}

#[test]
fn check_refuses_a_system_library() {
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap();
    let (code, out) = run(vcon_host().args(["plugins", "check", libm]));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("is not a vcon-host plugin"), "{out}");
}

fn check_misbehaving(on_save: &str) -> (Option<i32>, String) {
    run(vcon_host()
        .args(["plugins", "check"])
        .arg(test_plugin("misbehaving"))
        .args(["--options", &format!(r#"{{"on_save": "{on_save}"}}"#)]))
}

#[test]
fn check_reports_a_segfaulting_plugin_and_survives() {
    let (code, out) = check_misbehaving("segfault");
    assert_eq!(code, Some(1), "the checker itself survives: {out}");
    assert!(out.contains("crashed with SIGSEGV"), "{out}");
    assert!(
        out.contains("during check `save_then_get_round_trips`"),
        "{out}"
    );
}

#[test]
fn check_reports_an_aborting_plugin() {
    let (code, out) = check_misbehaving("abort");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("crashed with SIGABRT"), "{out}");
}

#[test]
fn check_reports_a_plugin_that_exits() {
    let (code, out) = check_misbehaving("exit");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("ended the process with exit status 3"),
        "{out}"
    );
}

#[test]
fn check_fails_a_panicking_plugin_with_the_reason() {
    let (code, out) = check_misbehaving("panic");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("panicked in save"), "{out}");
}

#[test]
fn check_refuses_options_that_are_not_a_json_object() {
    let (code, out) = run(vcon_host()
        .args(["plugins", "check"])
        .arg(plugin("memory"))
        .args(["--options", "[1,2]"]));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--options must be a JSON object"), "{out}");
}
