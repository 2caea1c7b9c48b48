//! Where the shared test vCons are, for every plugin's tests and benchmarks: one definition of
//! the data set's location and order, so each suite does not carry its own copy.

use std::path::PathBuf;

/// The shared test vCons: `VCON_TEST_DATA`, else `shared/vcons` beside the repository.
pub fn shared_vcons() -> PathBuf {
    std::env::var_os("VCON_TEST_DATA").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/vcons"
            ))
        },
        PathBuf::from,
    )
}

/// The first `count` files of the fake data set (601 vCons of 1-10 KB), in name order so every
/// run sees the same documents.
///
/// # Panics
/// When the data set is missing: a test cannot run without it, and the message says where it
/// was looked for.
pub fn fake_paths(count: usize) -> Vec<PathBuf> {
    let dir = shared_vcons().join("fake");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| {
        panic!(
            "{}: {err} (the shared test vCons must sit beside the repository, or set VCON_TEST_DATA)",
            dir.display()
        )
    });
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".json"))
        .collect();
    paths.sort();
    paths.truncate(count);
    paths
}

/// The large recorded call (`cat1`, 270 KB).
pub fn cat1_path() -> PathBuf {
    shared_vcons().join("reference-fixtures/valid/cat1_vcon.json")
}

/// A first-party plugin as `cargo xtask build-plugins` installs it: `VCON_PLUGIN_DIR`, else
/// `target/plugins` of this workspace, file `libvcon_storage_{name}.so`.
///
/// # Panics
/// When the file is not there, saying how to build it.
pub fn built_plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("VCON_PLUGIN_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/plugins")),
        PathBuf::from,
    );
    let path = dir.join(format!(
        "{}vcon_storage_{name}.{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_EXTENSION
    ));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask build-plugins` first",
        path.display()
    );
    path
}
