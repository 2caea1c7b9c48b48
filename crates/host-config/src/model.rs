//! The validated config: what the host acts on once `config.yml` has been read and checked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A whole, validated `config.yml`: every chain names links and storages that exist, and no two
/// enabled chains share an ingress list.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, so later errors (a plugin that will not open) can name it.
    pub file: PathBuf,
    /// Settings the Python server takes from environment variables.
    pub host: HostSettings,
    /// Storages in file order: the order reads fall back through, as in the Python server.
    pub storages: Vec<StorageConfig>,
    /// Links vcon-host implements, in file order.
    pub links: Vec<LinkConfig>,
    /// Chains in file order, enabled or not.
    pub chains: Vec<ChainConfig>,
    /// Per ingress list, the API keys that may post to it (`/vcon/external-ingress`).
    pub ingress_auth: BTreeMap<String, Vec<Secret>>,
}

impl Config {
    /// The enabled chains: the only ones that take work.
    pub fn enabled_chains(&self) -> impl Iterator<Item = &ChainConfig> {
        self.chains.iter().filter(|c| c.enabled)
    }
}

/// The `host:` section, each key falling back to the Python server's environment variable.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSettings {
    /// Where the HTTP API listens (`host.bind`; default `127.0.0.1:8000`).
    pub bind: String,
    /// API keys accepted everywhere (`host.api_token`, `CONSERVER_API_TOKEN`, and one per line
    /// of `host.api_token_file` / `CONSERVER_API_TOKEN_FILE`). Empty: the API is open.
    pub api_tokens: Vec<Secret>,
    /// The header carrying an API key (`CONSERVER_HEADER_NAME`).
    pub header_name: String,
    /// The prefix the API also answers under (`API_ROOT_PATH`, default `/api`).
    pub root_path: String,
    /// The broker holding hot vCons and lists (`host.broker`, `REDIS_URL`).
    pub broker: BrokerUrl,
    /// Directories searched for plugins before `VCON_PLUGIN_PATH` and the build output.
    pub plugin_dirs: Vec<PathBuf>,
    /// Worker threads; 0 means one per core (`CONSERVER_WORKERS`).
    pub workers: usize,
    /// vCons a worker claims at once and hands to each storage's `save_many`.
    pub batch_size: usize,
    /// Time to live of a hot vCon (`VCON_REDIS_EXPIRY`); `None` keeps it until deleted.
    pub hot_ttl: Option<Duration>,
    /// Time to live of a dead-lettered vCon's hot copy (`VCON_DLQ_EXPIRY`, default 7 days).
    pub dlq_ttl: Option<Duration>,
    /// How storage calls that fail with `Unavailable` are retried.
    pub retry: RetryPolicy,
    /// Calls in flight per storage unless the storage sets `max_concurrency`.
    pub storage_concurrency: usize,
    /// The largest request body the API accepts (`host.max_body_bytes`,
    /// `VCON_MAX_BODY_BYTES`; default 10 MiB); larger ones get `413`.
    pub max_body_bytes: usize,
    /// How long the API thread keeps polling its sockets after an answer before it sleeps
    /// (`host.api_busy_poll_us`, `VCON_API_BUSY_POLL_US`; default 1000 µs, `0` = never): a
    /// client's next request then finds it awake, for up to this much CPU per answer. The
    /// default is longer than a client on the same machine or network segment takes to read a
    /// large answer and send its next request (a 270 KB vCon each way), and short enough that
    /// a trickle of requests costs little. The API's broker thread (its document stager and
    /// broker writer) polls its queue as long after each job. Neither polls while the embedded
    /// broker's checkpoint thread works, so it and the clients have the cores.
    pub api_busy_poll_us: u64,
    /// Whether a vCon entering at ingress (`POST /vcon`, external ingress, `vcon-host
    /// ingest`) is stored byte for byte as it came (`host.keep_whitespace`,
    /// `VCON_KEEP_WHITESPACE`; default `false`). By default the whitespace between its tokens is
    /// dropped first, nothing else: every key, string and number keeps its exact text and
    /// order. A pretty-printed vCon is about half indentation (cat1: 275,840 bytes, 140,410
    /// without), which every storage would otherwise keep and every read would send. The
    /// Python server keeps no whitespace either: it stores and answers its own re-serialisation.
    pub keep_whitespace: bool,
}

/// Which broker to use: the embedded SQLite file or a Redis server.
#[derive(Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    /// The embedded broker: a SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A Redis URL (`redis://` or `rediss://`).
    Redis(String),
}

impl fmt::Display for BrokerUrl {
    /// Shows where the broker is without the password a Redis URL may carry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Redis(url) => f.write_str(&redact_url(url)),
        }
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// Exponential back-off with jitter for storage calls that fail with `Unavailable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1 disables retries).
    pub max_attempts: u32,
    /// The wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// The longest wait between two tries.
    pub max_backoff: Duration,
    /// Randomise each wait (between half and all of it) so workers do not retry in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            jitter: true,
        }
    }
}

/// One entry of `storages:`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// The storage's name: what chains list and what `DLQ:storage:{name}` is named after.
    pub name: String,
    /// The module as written (`storage.postgres`), or the plugin path, for messages.
    pub module: String,
    /// Where the plugin comes from.
    pub source: PluginSource,
    /// The `options:` mapping as JSON, handed to the plugin's `open` (`{}` when absent).
    pub options: serde_json::Value,
    /// Calls in flight at once for this storage (overrides `host.storage_concurrency`).
    pub max_concurrency: Option<usize>,
    /// The line of the storage's name in the file.
    pub line: usize,
}

/// How a storage's plugin is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// By name on the plugin search path (`module: storage.postgres` → `postgres`).
    Module {
        /// The plugin name the loaded file must report.
        plugin: String,
        /// The module as written.
        module: String,
    },
    /// A plugin file named directly (`plugin: PATH`), optionally pinned by its sha256.
    File {
        /// The `.so` path.
        path: PathBuf,
        /// The expected sha256 of the file, in hex.
        sha256: Option<String>,
    },
}

/// The links built into the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// `links.tag`: add tags.
    Tag,
    /// `links.sampler`: keep a percentage, a rate or every Nth vCon.
    Sampler,
    /// `links.expire_vcon`: set a time to live on the hot copy.
    ExpireVcon,
    /// `links.tag_router`: push the uuid to lists chosen by its tags.
    TagRouter,
}

/// One entry of `links:`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// The link's name, as chains list it.
    pub name: String,
    /// The module as written (`links.tag`).
    pub module: String,
    /// Which built-in link it is.
    pub kind: LinkKind,
    /// The `options:` as JSON (`null` when absent; each link merges its own defaults).
    pub options: serde_json::Value,
    /// The line of the link's name in the file.
    pub line: usize,
}

/// One entry of `chains:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    /// The chain's name.
    pub name: String,
    /// Links run in order.
    pub links: Vec<String>,
    /// Storages written in parallel.
    pub storages: Vec<String>,
    /// Lists the chain takes uuids from.
    pub ingress_lists: Vec<String>,
    /// Lists the uuid is pushed to once every storage has the vCon.
    pub egress_lists: Vec<String>,
    /// `enabled: 0` (or `false`) keeps the chain from running, as the Python docs promise.
    pub enabled: bool,
    /// The longest a storage call of this chain may take.
    pub timeout: Option<Duration>,
    /// The line of the chain's name in the file.
    pub line: usize,
}

/// A token or password: shown as `***` by `Debug`, so it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must compare or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_password_never_shows() {
        let url = BrokerUrl::Redis("redis://app:hunter2@cache:6379/0".into());
        assert_eq!(url.to_string(), "redis://app:***@cache:6379/0");
        assert!(!format!("{url:?}").contains("hunter2"));
        let url = BrokerUrl::Redis("redis://:hunter2@cache".into());
        assert_eq!(url.to_string(), "redis://:***@cache");
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }
}
