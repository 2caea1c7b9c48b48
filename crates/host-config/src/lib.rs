//! Reads vcon-host's `config.yml`: the vCon Server's `storages:`, `links:`, `chains:` and
//! `ingress_auth:` sections plus a `host:` section, into a [`Config`] the host can act on.
//!
//! The file is read once and checked as a whole before anything starts: every problem comes
//! back at once as `FILE:LINE: key: message` (the Python server re-reads the file for every vCon
//! and finds mistakes one crash at a time). Compatibility with a config copied from the Python
//! server is deliberate: PyYAML's YAML 1.1 scalar rules (the `yaml` module), its module names
//! (the `modules` module), its environment variables; where its docs promise what its code does not do
//! (`${VAR}`, `enabled: 0`, one chain per ingress list), the docs win.
//!
//! - [`load`] / [`parse`]: the entry points.
//! - [`model`]: the validated config types.
//! - [`diagnostic`]: located errors and warnings.
//! - [`mod@env`]: `${VAR}` expansion.

pub mod diagnostic;
pub mod env;
pub mod model;
mod modules;
mod read;
mod yaml;

use std::path::Path;

pub use diagnostic::{ConfigErrors, Diagnostic};
pub use env::{process_env, Lookup};
pub use model::{
    BrokerUrl, ChainConfig, Config, HostSettings, LinkConfig, LinkKind, PluginSource, RetryPolicy,
    Secret, StorageConfig,
};

/// A config that loaded, and what the operator should hear about it (unsupported sections and
/// modules, chains that were disabled).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Warnings, each located like an error.
    pub warnings: Vec<Diagnostic>,
}

/// Reads and checks a config file, expanding `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors(vec![Diagnostic {
            file: path.to_owned(),
            line: 0,
            key: String::new(),
            message: format!(
                "cannot read the config file: {err} (give another with --config or CONSERVER_CONFIG_FILE)"
            ),
        }])
    })?;
    parse(&text, path, &process_env)
}

/// Checks config text as if read from `file`, with `env` answering `${VAR}` and the Python
/// server's environment variables (tests pass a map; [`load`] passes the process environment).
pub fn parse(text: &str, file: &Path, env: &Lookup<'_>) -> Result<Loaded, ConfigErrors> {
    let located = |problems: Vec<yaml::YamlProblem>| {
        ConfigErrors(
            problems
                .into_iter()
                .map(|p| Diagnostic {
                    file: file.to_owned(),
                    line: p.line,
                    key: p.key,
                    message: p.message,
                })
                .collect(),
        )
    };
    let root = yaml::parse(text, env).map_err(located)?;
    match read::read(file, root.as_ref(), env) {
        (Some(config), _, warnings) => Ok(Loaded { config, warnings }),
        (None, errors, _) => Err(ConfigErrors(errors)),
    }
}
