//! The plugin search path, in the order an operator expects: what the command line says,
//! then the environment, then the build output next to the binary.

use std::path::PathBuf;

use plugin_loader::SearchPath;

/// The environment variable holding extra plugin directories, `PATH`-style.
pub const PLUGIN_PATH_ENV: &str = "VCON_PLUGIN_PATH";

/// Builds the search path from `--plugin-dir` values, `VCON_PLUGIN_PATH`, and finally the
/// `plugins/` directory beside the binary's build directory (`target/release/vcon-host` looks in
/// `target/plugins/`, where `cargo xtask build-plugins` puts first-party plugins).
pub fn search_path(cli_dirs: &[PathBuf]) -> SearchPath {
    let mut path = SearchPath::new(cli_dirs.iter().cloned());
    if let Some(list) = std::env::var_os(PLUGIN_PATH_ENV) {
        path.push_env_list(&list);
    }
    if let Some(dir) = beside_binary() {
        path.push(dir);
    }
    path
}

fn beside_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let build_dir = exe.parent()?.parent()?;
    Some(build_dir.join("plugins"))
}
