//! What the Python server's module names mean here.
//!
//! The Python server imports `module: storage.postgres` as Python code; vcon-host loads the
//! plugin named `postgres`. Modules the Python server ships but vcon-host has no plugin or link
//! for yet are *known*, so a config copied from it loads with a warning for each instead of
//! failing; a module nobody has heard of is an error (most likely a typo).

use crate::model::LinkKind;

/// What a storage `module:` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StorageModule {
    /// Load the plugin of this name from the search path.
    Plugin(String),
    /// A Python storage module with no vcon-host plugin yet.
    NotYetSupported(&'static str),
    /// A dotted name that is neither.
    Unknown,
}

/// Python storage modules vcon-host does not ship a plugin for (reference §4).
const PYTHON_ONLY_STORAGES: &[&str] = &[
    "mongo",
    "elasticsearch",
    "milvus",
    "sftp",
    "dataverse",
    "chatgpt_files",
    "vcon_mcp",
    "scitt",
];

/// Python storage modules whose vcon-host plugin has a different name.
const RENAMED_STORAGES: &[(&str, &str)] = &[("s3", "object-store"), ("redis_storage", "redis")];

/// Maps `storage.NAME` (the Python form) or a bare plugin name to what to load.
pub(crate) fn storage_module(module: &str) -> StorageModule {
    match module.strip_prefix("storage.") {
        Some(name) => {
            if let Some((_, plugin)) = RENAMED_STORAGES.iter().find(|(py, _)| *py == name) {
                StorageModule::Plugin((*plugin).to_owned())
            } else if let Some(known) = PYTHON_ONLY_STORAGES.iter().find(|py| **py == name) {
                StorageModule::NotYetSupported(known)
            } else if is_plugin_name(name) {
                StorageModule::Plugin(name.to_owned())
            } else {
                StorageModule::Unknown
            }
        }
        None if is_plugin_name(module) => StorageModule::Plugin(module.to_owned()),
        None => StorageModule::Unknown,
    }
}

/// What a link `module:` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkModule {
    /// A link built into the host.
    BuiltIn(LinkKind),
    /// A Python link with no vcon-host equivalent yet.
    NotYetSupported,
    /// Neither.
    Unknown,
}

/// Python links vcon-host does not implement yet (reference §6).
const PYTHON_ONLY_LINKS: &[&str] = &[
    "jq_link",
    "webhook",
    "diet",
    "delay",
    "analyze",
    "analyze_and_label",
    "analyze_vcon",
    "check_and_tag",
    "detect_engagement",
    "deepgram_link",
    "groq_whisper",
    "hugging_face_whisper",
    "hugging_llm_link",
    "openai_transcribe",
    "transcribe",
    "wtf_transcribe",
    "post_analysis_to_slack",
    "datatrails",
    "scitt",
    "summarize",
];

/// Maps `links.NAME` (or a bare `NAME`) to a built-in link.
pub(crate) fn link_module(module: &str) -> LinkModule {
    let name = module.strip_prefix("links.").unwrap_or(module);
    match name {
        "tag" => LinkModule::BuiltIn(LinkKind::Tag),
        "sampler" => LinkModule::BuiltIn(LinkKind::Sampler),
        "expire_vcon" => LinkModule::BuiltIn(LinkKind::ExpireVcon),
        "tag_router" => LinkModule::BuiltIn(LinkKind::TagRouter),
        _ if module.starts_with("links.") || PYTHON_ONLY_LINKS.contains(&name) => {
            LinkModule::NotYetSupported
        }
        _ => LinkModule::Unknown,
    }
}

/// A plugin name: what a `.so` reports and what its file is named after.
pub(crate) fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_storage_modules_map_to_plugins() {
        assert_eq!(
            storage_module("storage.postgres"),
            StorageModule::Plugin("postgres".into())
        );
        assert_eq!(
            storage_module("storage.s3"),
            StorageModule::Plugin("object-store".into())
        );
        assert_eq!(
            storage_module("sqlite"),
            StorageModule::Plugin("sqlite".into())
        );
        assert_eq!(
            storage_module("storage.mongo"),
            StorageModule::NotYetSupported("mongo")
        );
        assert_eq!(storage_module("my.python.module"), StorageModule::Unknown);
        assert_eq!(storage_module("../evil"), StorageModule::Unknown);
    }

    #[test]
    fn python_links_map_to_built_ins_or_known_gaps() {
        assert_eq!(link_module("links.tag"), LinkModule::BuiltIn(LinkKind::Tag));
        assert_eq!(
            link_module("sampler"),
            LinkModule::BuiltIn(LinkKind::Sampler)
        );
        assert_eq!(
            link_module("links.deepgram_link"),
            LinkModule::NotYetSupported
        );
        assert_eq!(
            link_module("links.some_future_link"),
            LinkModule::NotYetSupported
        );
        assert_eq!(link_module("tga"), LinkModule::Unknown);
    }
}
