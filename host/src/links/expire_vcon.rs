//! `links.expire_vcon`: sets a time to live on the hot copy (`EXPIRE vcon:{uuid} seconds` in
//! the Python server). Always continues. Default 86400 seconds.

use std::time::Duration;

use super::{parse_options, Link, LinkError, Outcome, WorkingVcon};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default = "default_seconds")]
    seconds: u64,
}

fn default_seconds() -> u64 {
    86_400
}

/// The `expire_vcon` link.
#[derive(Debug)]
pub(super) struct ExpireVcon {
    ttl: Duration,
}

impl ExpireVcon {
    pub(super) fn from_options(options: serde_json::Value) -> Result<Self, String> {
        let options: Options = parse_options("expire_vcon", options)?;
        Ok(Self {
            ttl: Duration::from_secs(options.seconds),
        })
    }
}

impl Link for ExpireVcon {
    fn run(&self, vcon: &mut WorkingVcon) -> Result<Outcome, LinkError> {
        vcon.ttl = Some(self.ttl);
        Ok(Outcome::Continue)
    }
}
