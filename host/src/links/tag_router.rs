//! `links.tag_router`: pushes the uuid to the lists mapped from its tag names.
//!
//! Options (Python's): `tag_routes: {tag_name: list}`, `forward_original` (default true: keep
//! going down the chain; false drops it here). The pushes happen when the chain finishes the
//! vCon, atomically with its other list updates.

use std::collections::BTreeMap;

use super::{parse_options, tag_names, Link, LinkError, Outcome, WorkingVcon};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    tag_routes: BTreeMap<String, String>,
    #[serde(default = "yes")]
    forward_original: bool,
}

fn yes() -> bool {
    true
}

/// The `tag_router` link.
#[derive(Debug)]
pub(super) struct TagRouter {
    routes: BTreeMap<String, String>,
    forward_original: bool,
}

impl TagRouter {
    pub(super) fn from_options(options: serde_json::Value) -> Result<Self, String> {
        let options: Options = parse_options("tag_router", options)?;
        Ok(Self {
            routes: options.tag_routes,
            forward_original: options.forward_original,
        })
    }
}

impl Link for TagRouter {
    fn run(&self, vcon: &mut WorkingVcon) -> Result<Outcome, LinkError> {
        if self.routes.is_empty() {
            return Ok(Outcome::Continue);
        }
        let names = tag_names(vcon.value()?);
        for name in names {
            if let Some(list) = self.routes.get(&name) {
                if !vcon.pushes.contains(list) {
                    vcon.pushes.push(list.clone());
                }
            }
        }
        Ok(if self.forward_original {
            Outcome::Continue
        } else {
            Outcome::Drop
        })
    }
}
