//! Finding a plugin file by name on the search path, without loading anything.

use std::path::{Path, PathBuf};

use crate::LoadError;

/// The file-name prefix every plugin library carries (`libvcon_storage_NAME.so`), so the search
/// path can be scanned by name without running any code.
const STEM_PREFIX: &str = "vcon_storage_";

/// The file names a plugin called `name` may have on this platform, most specific first.
pub fn plugin_file_names(name: &str) -> Vec<String> {
    let stem = format!("{STEM_PREFIX}{}", name.replace('-', "_"));
    let ext = std::env::consts::DLL_EXTENSION;
    vec![
        format!("{}{stem}.{ext}", std::env::consts::DLL_PREFIX),
        format!("{stem}.{ext}"),
    ]
}

/// A plugin file found on the search path, named by its file name (not yet loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCandidate {
    /// The plugin name the file name implies.
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

/// The ordered list of directories plugins are looked up in.
///
/// The host builds it from `--plugin-dir`, `host.plugin_dirs` in the config, `VCON_PLUGIN_PATH`
/// (colon-separated) and the xtask output directory, in that order: the first match wins.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// A search path over `dirs`, in order.
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut path = Self::default();
        for dir in dirs {
            path.push(dir);
        }
        path
    }

    /// Appends a directory (ignored if already present).
    pub fn push(&mut self, dir: PathBuf) {
        if !self.dirs.contains(&dir) {
            self.dirs.push(dir);
        }
    }

    /// Appends every directory of a `PATH`-style list (as in `VCON_PLUGIN_PATH`).
    pub fn push_env_list(&mut self, list: &std::ffi::OsStr) {
        for dir in std::env::split_paths(list) {
            if !dir.as_os_str().is_empty() {
                self.push(dir);
            }
        }
    }

    /// The directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The file for plugin `name`: the first directory holding one of its file names.
    pub fn find(&self, name: &str) -> Result<PathBuf, LoadError> {
        let names = plugin_file_names(name);
        for dir in &self.dirs {
            for file in &names {
                let candidate = dir.join(file);
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
        Err(LoadError::NotOnSearchPath {
            name: name.to_owned(),
            searched: self.dirs.clone(),
            found: self.candidates().into_iter().map(|c| c.name).collect(),
        })
    }

    /// Every plugin file on the search path, first occurrence of each name only.
    pub fn candidates(&self) -> Vec<PluginCandidate> {
        let mut found: Vec<PluginCandidate> = Vec::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut here: Vec<PluginCandidate> = entries
                .filter_map(Result::ok)
                .filter_map(|entry| candidate_from_path(&entry.path()))
                .collect();
            here.sort_by(|a, b| a.name.cmp(&b.name));
            for candidate in here {
                if !found.iter().any(|c| c.name == candidate.name) {
                    found.push(candidate);
                }
            }
        }
        found
    }
}

fn candidate_from_path(path: &Path) -> Option<PluginCandidate> {
    if path.extension()? != std::env::consts::DLL_EXTENSION {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let stem = stem
        .strip_prefix(std::env::consts::DLL_PREFIX)
        .unwrap_or(stem);
    let name = stem.strip_prefix(STEM_PREFIX)?;
    Some(PluginCandidate {
        name: name.replace('_', "-"),
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_name_and_lists_what_it_found() {
        let dir = std::env::temp_dir().join(format!("vcon-search-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(&plugin_file_names("memory")[0]);
        std::fs::write(&file, b"").unwrap();
        std::fs::write(dir.join("libunrelated.so"), b"").unwrap();
        let path = SearchPath::new([dir.clone()]);
        assert_eq!(path.find("memory").unwrap(), file);
        let err = path.find("postgres").unwrap_err().to_string();
        assert!(err.contains("no plugin named 'postgres'"), "{err}");
        assert!(err.contains("plugins found: memory"), "{err}");
        assert!(err.contains(&dir.display().to_string()), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn object_store_name_keeps_its_dash() {
        assert!(plugin_file_names("object-store")[0].contains("vcon_storage_object_store"));
        let c = candidate_from_path(Path::new("/x/libvcon_storage_object_store.so")).unwrap();
        assert_eq!(c.name, "object-store");
    }
}
