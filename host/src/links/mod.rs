//! Links: the steps a chain runs on each vCon before storing it, with the Python server's
//! names and options.
//!
//! A link may change the vCon, drop it (the chain stops for it: no storage, no egress, no dead
//! letter, as in the Python server), push its uuid to other lists, or fail (the uuid goes to
//! `DLQ:{ingress_list}`). Links run in-process and synchronously; they are cheap transforms.

mod expire_vcon;
mod sampler;
mod tag;
mod tag_router;

use std::time::Duration;

use host_config::{LinkConfig, LinkKind};

/// A vCon as it moves through a chain's links: the stored bytes, parsed on first use.
#[derive(Debug)]
pub struct WorkingVcon {
    uuid: String,
    json: bytes::Bytes,
    parsed: Option<serde_json::Value>,
    changed: bool,
    /// A new time to live for the hot copy (`expire_vcon`).
    pub ttl: Option<Duration>,
    /// Lists to push the uuid to when the chain finishes (`tag_router`).
    pub pushes: Vec<String>,
}

impl WorkingVcon {
    /// Wraps a stored document.
    pub fn new(uuid: String, json: bytes::Bytes) -> Self {
        Self {
            uuid,
            json,
            parsed: None,
            changed: false,
            ttl: None,
            pushes: Vec::new(),
        }
    }

    /// The vCon's uuid.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The document for reading, parsed on first use.
    pub fn value(&mut self) -> Result<&serde_json::Value, LinkError> {
        if self.parsed.is_none() {
            let value = serde_json::from_slice(&self.json)
                .map_err(|err| LinkError(format!("stored vCon is not JSON: {err}")))?;
            self.parsed = Some(value);
        }
        Ok(self.parsed.get_or_insert(serde_json::Value::Null))
    }

    /// The document for changing; marks it changed so the chain re-validates and re-stores it.
    pub fn value_mut(&mut self) -> Result<&mut serde_json::Value, LinkError> {
        self.value()?;
        self.changed = true;
        Ok(self.parsed.get_or_insert(serde_json::Value::Null))
    }

    /// The document's bytes after the links: the original when nothing changed (no copy).
    pub fn into_json(self) -> Result<(bytes::Bytes, bool), LinkError> {
        match (self.changed, self.parsed) {
            (true, Some(value)) => serde_json::to_vec(&value)
                .map(|bytes| (bytes.into(), true))
                .map_err(|err| LinkError(format!("cannot serialise the changed vCon: {err}"))),
            _ => Ok((self.json, false)),
        }
    }
}

/// What a link decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Go on to the next link (or the storages).
    Continue,
    /// Stop the chain for this vCon, quietly.
    Drop,
}

/// A link failed: the vCon goes to the ingress list's dead-letter list with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(pub String);

/// One configured link.
pub trait Link: Send + Sync + std::fmt::Debug {
    /// Runs the link on one vCon.
    fn run(&self, vcon: &mut WorkingVcon) -> Result<Outcome, LinkError>;
}

/// Builds a link from its config, refusing bad options with the option's name.
pub fn build(config: &LinkConfig) -> Result<Box<dyn Link>, String> {
    let options = if config.options.is_null() {
        serde_json::json!({})
    } else {
        config.options.clone()
    };
    match config.kind {
        LinkKind::Tag => tag::Tag::from_options(options).map(|l| Box::new(l) as Box<dyn Link>),
        LinkKind::Sampler => {
            sampler::Sampler::from_options(options).map(|l| Box::new(l) as Box<dyn Link>)
        }
        LinkKind::ExpireVcon => {
            expire_vcon::ExpireVcon::from_options(options).map(|l| Box::new(l) as Box<dyn Link>)
        }
        LinkKind::TagRouter => {
            tag_router::TagRouter::from_options(options).map(|l| Box::new(l) as Box<dyn Link>)
        }
        #[allow(unreachable_patterns)]
        _ => Err(format!("link module {} is not supported", config.module)),
    }
}

/// Parses link options (Python defaults merged under what the config gives) naming bad keys.
fn parse_options<T: serde::de::DeserializeOwned>(
    link: &str,
    options: serde_json::Value,
) -> Result<T, String> {
    serde_path_to_error::deserialize(options).map_err(|err| {
        let path = err.path().to_string();
        format!("{link} options: {path}: {}", err.into_inner())
    })
}

/// The tag names in a vCon's `tags` attachments (`name:value` strings, or object keys), for
/// `tag_router` and tests.
pub fn tag_names(value: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    let Some(attachments) = value.get("attachments").and_then(|a| a.as_array()) else {
        return names;
    };
    for attachment in attachments {
        let purpose = attachment
            .get("purpose")
            .or_else(|| attachment.get("type"))
            .and_then(|p| p.as_str());
        if purpose != Some("tags") {
            continue;
        }
        let body = match attachment.get("body") {
            // A JSON-encoded body (encoding: json, body a string) holds the list as text.
            Some(serde_json::Value::String(text)) => serde_json::from_str(text).unwrap_or_default(),
            Some(other) => other.clone(),
            None => continue,
        };
        match body {
            serde_json::Value::Array(items) => names.extend(
                items
                    .iter()
                    .filter_map(|t| t.as_str())
                    .map(|t| t.split(':').next().unwrap_or(t).to_owned()),
            ),
            serde_json::Value::Object(map) => names.extend(map.keys().cloned()),
            _ => {}
        }
    }
    names
}
