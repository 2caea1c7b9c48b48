//! The `options:` of a redis storage, checked in one place ([`Options::check`]) into the
//! [`Settings`] the storage runs on.
//!
//! The first three options are the Python module's (`redis_url`, `prefix`, `expires`, with its
//! defaults), so a `storages:` entry copied from the Python server's `config.yml` opens
//! unchanged. The Python module's own default `redis_url`, `redis://:localhost:6379`, is
//! malformed (the host sits where the password belongs) and the module ignores the option
//! anyway, always using the server-wide `REDIS_URL` client; here the option is honoured, and
//! that exact malformed value is treated as "not given" (with a warning), so it means what it
//! meant in Python: `REDIS_URL`.
//!
//! The others are this plugin's own, for what the Python module left to chance: how many
//! connections, and how long to wait for Redis before answering a retryable error.

use std::fmt;
use std::time::Duration;

use plugin_sdk::Secret;
use serde::Deserialize;

/// The environment variable read when `redis_url` is not given: the one the Python server (and
/// this host's Redis broker) read, so one setting points everything at the same server.
pub const URL_ENV: &str = "REDIS_URL";

/// Where to connect when neither `redis_url` nor `REDIS_URL` says.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// The Python module's default `redis_url`: malformed, and ignored by the Python module, so
/// treated here as if the option were absent.
pub const PYTHON_DEFAULT_URL: &str = "redis://:localhost:6379";

/// The Python module's default key prefix (keys are `{prefix}:{uuid}`).
pub const DEFAULT_PREFIX: &str = "vcon_storage";

/// The Python module's default time to live of a stored vCon, in seconds (7 days).
pub const DEFAULT_EXPIRES_S: u64 = 604_800;

/// The longest `expires` accepted, in seconds (100 years): far beyond any retention policy, and
/// well inside what Redis accepts for `SET ... EX` (a larger value makes Redis refuse the write
/// with "invalid expire time", which would surface only at the first save).
pub const MAX_EXPIRES_S: u64 = 100 * 366 * 86_400;

/// The default `pool_size`.
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// The largest `pool_size`: Redis serves each connection on one thread anyway, and the host
/// bounds the calls in flight per storage.
pub const MAX_POOL_SIZE: u32 = 256;

/// The default `connect_timeout`, in seconds.
pub const DEFAULT_CONNECT_TIMEOUT_S: u64 = 5;

/// The default `command_timeout`, in seconds: long enough for a batch of large documents on a
/// slow link, short enough that a stalled server frees the calling thread.
pub const DEFAULT_COMMAND_TIMEOUT_S: u64 = 30;

/// The largest `connect_timeout` and `command_timeout`, in seconds (an hour).
pub const MAX_TIMEOUT_S: u64 = 3_600;

/// The `options:` of a redis storage. Unknown keys are refused, so a misspelt option is an error
/// at start-up instead of a silent default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// `redis://[[user]:password@]host[:port][/db]` (or `redis+unix:///path?db=N&pass=...`).
    /// A secret, as it may hold the password: never logged, and shown with the password as
    /// `***`. Default: the `REDIS_URL` environment variable, else `redis://127.0.0.1:6379`.
    pub redis_url: Option<Secret>,
    /// Keys are `{prefix}:{uuid}`. Default `vcon_storage`, the Python module's.
    pub prefix: Option<String>,
    /// Seconds a stored vCon lives (Redis `EX`); `0` keeps it until deleted. Default 604800
    /// (7 days), the Python module's. A save resets the clock, as in Python.
    #[serde(deserialize_with = "plugin_sdk::number_or_string")]
    pub expires: Option<u64>,
    /// The most connections this storage opens (on demand, then kept).
    #[serde(deserialize_with = "plugin_sdk::number_or_string")]
    pub pool_size: Option<u32>,
    /// Seconds to wait for a new connection (and for a free one when all are busy) before the
    /// call answers a retryable error.
    #[serde(deserialize_with = "plugin_sdk::number_or_string")]
    pub connect_timeout: Option<u64>,
    /// Seconds Redis may take to accept a command and to answer it before the call answers a
    /// retryable error (and the connection is dropped).
    #[serde(deserialize_with = "plugin_sdk::number_or_string")]
    pub command_timeout: Option<u64>,
}

/// Where the URL came from, for the log line at open and for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlSource {
    /// The `redis_url` option.
    Option,
    /// The `REDIS_URL` environment variable.
    Environment,
    /// Nothing said where: [`DEFAULT_URL`].
    Default,
}

impl UrlSource {
    /// How an operator would name it in a message.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Option => "the option redis_url",
            Self::Environment => "the REDIS_URL environment variable",
            Self::Default => "the default (no redis_url option, no REDIS_URL)",
        }
    }
}

/// What the storage runs on: options checked, defaults applied, the URL parsed.
pub(crate) struct Settings {
    /// Where and how to connect (holds the password: deliberately not `Debug`).
    pub(crate) connection: redis::ConnectionInfo,
    /// Where the URL came from.
    pub(crate) url_source: UrlSource,
    /// Whether `redis_url` was the Python module's malformed default (and so ignored).
    pub(crate) python_default_ignored: bool,
    /// The server, with the password as `***`: the only form that goes into logs and messages.
    pub(crate) target: String,
    /// The key prefix.
    pub(crate) prefix: String,
    /// The time to live given to every saved vCon; `None` for no expiry.
    pub(crate) expires: Option<u64>,
    /// The pool's size.
    pub(crate) pool_size: u32,
    /// See [`Options::connect_timeout`].
    pub(crate) connect_timeout: Duration,
    /// See [`Options::command_timeout`].
    pub(crate) command_timeout: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("target", &self.target)
            .field("url_source", &self.url_source)
            .field("prefix", &self.prefix)
            .field("expires", &self.expires)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The password, if the URL has one: the storage removes it from any message that might
    /// quote it (belt and braces: no message is built from the URL itself).
    pub(crate) fn password(&self) -> Option<&str> {
        self.connection
            .redis
            .password
            .as_deref()
            .filter(|p| !p.is_empty())
    }
}

impl Options {
    /// Checks the options and applies the defaults, reading `REDIS_URL` from the environment.
    /// The error is the message for the operator; it names the option and never contains the
    /// password.
    pub(crate) fn check(&self) -> Result<Settings, String> {
        self.check_with_env(|name| std::env::var(name).ok())
    }

    /// [`Options::check`] with the environment given, so the default is testable without
    /// changing the process's environment.
    pub(crate) fn check_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
        let given = self
            .redis_url
            .as_ref()
            .map(|url| url.expose().trim())
            .filter(|url| !url.is_empty());
        let python_default_ignored = given == Some(PYTHON_DEFAULT_URL);
        let from_env = env(URL_ENV)
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty());
        let (url, url_source) = match (given.filter(|_| !python_default_ignored), from_env) {
            (Some(url), _) => (url.to_owned(), UrlSource::Option),
            (None, Some(url)) => (url, UrlSource::Environment),
            (None, None) => (DEFAULT_URL.to_owned(), UrlSource::Default),
        };
        let connection = parse_url(&url, url_source)?;

        let prefix = self.prefix.as_deref().unwrap_or(DEFAULT_PREFIX);
        if prefix.is_empty() {
            return Err(
                "invalid option prefix: it is empty; keys are `{prefix}:{uuid}`, so give a name \
                 (the default is `vcon_storage`), or leave the option out"
                    .to_owned(),
            );
        }
        if prefix.chars().any(char::is_control) {
            return Err(
                "invalid option prefix: it contains a control character (a newline?)".to_owned(),
            );
        }

        let expires = self.expires.unwrap_or(DEFAULT_EXPIRES_S);
        if expires > MAX_EXPIRES_S {
            return Err(format!(
                "invalid option expires: {expires} seconds is more than 100 years \
                 ({MAX_EXPIRES_S}); use 0 to keep vCons until they are deleted"
            ));
        }
        let pool_size = self.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
        if pool_size == 0 || pool_size > MAX_POOL_SIZE {
            return Err(format!(
                "invalid option pool_size: {pool_size} is not between 1 and {MAX_POOL_SIZE}"
            ));
        }
        let connect_timeout = timeout(
            "connect_timeout",
            self.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT_S,
        )?;
        let command_timeout = timeout(
            "command_timeout",
            self.command_timeout,
            DEFAULT_COMMAND_TIMEOUT_S,
        )?;

        Ok(Settings {
            target: describe_target(&connection),
            connection,
            url_source,
            python_default_ignored,
            prefix: prefix.to_owned(),
            expires: (expires > 0).then_some(expires),
            pool_size,
            connect_timeout,
            command_timeout,
        })
    }
}

/// A time-out option in whole seconds, 1 to [`MAX_TIMEOUT_S`].
fn timeout(name: &str, value: Option<u64>, default: u64) -> Result<Duration, String> {
    let seconds = value.unwrap_or(default);
    if seconds == 0 || seconds > MAX_TIMEOUT_S {
        return Err(format!(
            "invalid option {name}: {seconds} is not between 1 and {MAX_TIMEOUT_S} seconds"
        ));
    }
    Ok(Duration::from_secs(seconds))
}

/// Parses a Redis URL. Errors never repeat the URL (it may hold a password).
fn parse_url(url: &str, source: UrlSource) -> Result<redis::ConnectionInfo, String> {
    let what = match source {
        UrlSource::Environment => {
            "invalid REDIS_URL (used because the option redis_url is not given)"
        }
        UrlSource::Option | UrlSource::Default => "invalid option redis_url",
    };
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("redis" | "valkey" | "redis+unix" | "valkey+unix" | "unix") => {}
        Some("rediss" | "valkeys") => {
            return Err(format!(
                "{what}: TLS (rediss://) is not supported by this build of the plugin; reach the \
                 server over a trusted network or a TLS tunnel (stunnel, spiped), with redis://"
            ))
        }
        _ => {
            return Err(format!(
                "{what}: it must start with redis:// (redis://[[user]:password@]host[:port][/db], \
                 e.g. redis://127.0.0.1:6379/0) or redis+unix:// (redis+unix:///path/to/socket?db=0)"
            ))
        }
    }
    let parsed = redis::parse_redis_url(url).ok_or_else(|| {
        format!(
            "{what}: it is not a valid URL (expected redis://[[user]:password@]host[:port][/db]; \
             a password with `@`, `/` or `:` must be %-encoded)"
        )
    })?;
    let info = redis::IntoConnectionInfo::into_connection_info(parsed)
        .map_err(|err| format!("{what}: {}", config_problem(&err)))?;
    if info.redis.db < 0 {
        return Err(format!(
            "{what}: the database number must be 0 or more, not {}",
            info.redis.db
        ));
    }
    Ok(info)
}

/// The client's reason for refusing a URL, without its error-kind decoration.
fn config_problem(err: &redis::RedisError) -> String {
    match err.detail() {
        Some(detail) => detail.to_owned(),
        None => {
            let text = err.to_string();
            text.split("- ").next().unwrap_or(&text).trim().to_owned()
        }
    }
}

/// `redis://user:***@host:port/db`: the server as an operator recognises it, without the
/// password.
pub(crate) fn describe_target(info: &redis::ConnectionInfo) -> String {
    let redis = &info.redis;
    let credentials = match (&redis.username, redis.password.is_some()) {
        (Some(user), true) => format!("{user}:***@"),
        (Some(user), false) => format!("{user}@"),
        (None, true) => ":***@".to_owned(),
        (None, false) => String::new(),
    };
    match &info.addr {
        redis::ConnectionAddr::Tcp(host, port) => {
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            format!("redis://{credentials}{host}:{port}/{}", redis.db)
        }
        redis::ConnectionAddr::TcpTls { host, port, .. } => {
            format!("rediss://{credentials}{host}:{port}/{}", redis.db)
        }
        redis::ConnectionAddr::Unix(path) => {
            let mut text = format!("redis+unix://{}?db={}", path.display(), redis.db);
            if let Some(user) = &redis.username {
                text.push_str(&format!("&user={user}"));
            }
            if redis.password.is_some() {
                text.push_str("&pass=***");
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(json: &str) -> Result<Options, plugin_sdk::StorageError> {
        plugin_sdk::parse_options(json)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_are_the_python_modules() {
        let settings = parse("{}").unwrap().check_with_env(no_env).unwrap();
        assert_eq!(settings.target, "redis://127.0.0.1:6379/0");
        assert_eq!(settings.url_source, UrlSource::Default);
        assert_eq!(settings.prefix, "vcon_storage");
        assert_eq!(settings.expires, Some(604_800));
        assert_eq!(settings.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(settings.connect_timeout, Duration::from_secs(5));
        assert_eq!(settings.command_timeout, Duration::from_secs(30));
    }

    #[test]
    fn redis_url_defaults_to_the_environment() {
        let env = |name: &str| (name == URL_ENV).then(|| "redis://envhost:6390/3".to_owned());
        let settings = parse("{}").unwrap().check_with_env(env).unwrap();
        assert_eq!(settings.target, "redis://envhost:6390/3");
        assert_eq!(settings.url_source, UrlSource::Environment);
        // The option wins over the environment.
        let settings = parse(r#"{"redis_url": "redis://opt:1/2"}"#)
            .unwrap()
            .check_with_env(env)
            .unwrap();
        assert_eq!(settings.target, "redis://opt:1/2");
        // An empty environment variable is no setting.
        let empty = |_: &str| Some(" ".to_owned());
        let settings = parse("{}").unwrap().check_with_env(empty).unwrap();
        assert_eq!(settings.url_source, UrlSource::Default);
    }

    #[test]
    fn the_python_default_url_means_not_given() {
        let options = parse(r#"{"redis_url": "redis://:localhost:6379", "prefix": "vcon_storage", "expires": 604800}"#).unwrap();
        let settings = options.check_with_env(no_env).unwrap();
        assert!(settings.python_default_ignored);
        assert_eq!(settings.target, "redis://127.0.0.1:6379/0");
        let env = |_: &str| Some("redis://redis:6379".to_owned());
        let settings = options.check_with_env(env).unwrap();
        assert_eq!(settings.target, "redis://redis:6379/0");
        assert_eq!(settings.url_source, UrlSource::Environment);
    }

    #[test]
    fn passwords_are_hidden_everywhere() {
        let options = parse(r#"{"redis_url": "redis://app:hunter2@db.example:6400/11"}"#).unwrap();
        assert!(!format!("{options:?}").contains("hunter2"));
        let settings = options.check_with_env(no_env).unwrap();
        assert_eq!(settings.target, "redis://app:***@db.example:6400/11");
        assert_eq!(settings.password(), Some("hunter2"));
        assert!(!format!("{settings:?}").contains("hunter2"));

        let settings = parse(r#"{"redis_url": "redis://:hunter2@[::1]/1"}"#)
            .unwrap()
            .check_with_env(no_env)
            .unwrap();
        assert_eq!(settings.target, "redis://:***@[::1]:6379/1");

        let settings = parse(r#"{"redis_url": "redis+unix:///run/redis.sock?db=4&pass=hunter2"}"#)
            .unwrap()
            .check_with_env(no_env)
            .unwrap();
        assert_eq!(
            settings.target,
            "redis+unix:///run/redis.sock?db=4&pass=***"
        );

        for bad in [
            r#"{"redis_url": "http://u:hunter2@h/1"}"#,
            r#"{"redis_url": "redis://u:hunter2@h/x"}"#,
            r#"{"redis_url": "redis://u:hunter2@h:99999/1"}"#,
            r#"{"redis_url": "rediss://u:hunter2@h/1"}"#,
            r#"{"redis_url": "redis://u:hunt/er2@h/1"}"#,
        ] {
            let err = parse(bad).unwrap().check_with_env(no_env).unwrap_err();
            assert!(err.contains("redis_url"), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{bad}: {err}");
        }
        let env = |_: &str| Some("http://u:hunter2@h".to_owned());
        let err = parse("{}").unwrap().check_with_env(env).unwrap_err();
        assert!(
            err.contains("REDIS_URL") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn numbers_may_be_strings_and_are_range_checked() {
        let settings = parse(
            r#"{"expires": "60", "pool_size": "2", "connect_timeout": 1, "command_timeout": "9"}"#,
        )
        .unwrap()
        .check_with_env(no_env)
        .unwrap();
        assert_eq!(settings.expires, Some(60));
        assert_eq!(settings.pool_size, 2);
        assert_eq!(settings.connect_timeout, Duration::from_secs(1));
        assert_eq!(settings.command_timeout, Duration::from_secs(9));
        let settings = parse(r#"{"expires": 0}"#)
            .unwrap()
            .check_with_env(no_env)
            .unwrap();
        assert_eq!(settings.expires, None);

        for (bad, key) in [
            (r#"{"expires": "soon"}"#, "expires"),
            (r#"{"expires": -1}"#, "expires"),
            (r#"{"pool_size": 1e3}"#, "pool_size"),
            (r#"{"prefx": "x"}"#, "prefx"),
            (r#"{"prefix": 3}"#, "prefix"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.message().contains(key), "{bad}: {err}");
        }
        for (bad, key) in [
            (r#"{"expires": 99999999999}"#, "expires"),
            (r#"{"pool_size": 0}"#, "pool_size"),
            (r#"{"pool_size": 257}"#, "pool_size"),
            (r#"{"connect_timeout": 0}"#, "connect_timeout"),
            (r#"{"command_timeout": 3601}"#, "command_timeout"),
            (r#"{"prefix": ""}"#, "prefix"),
            (r#"{"prefix": "a\nb"}"#, "prefix"),
        ] {
            let err = parse(bad).unwrap().check_with_env(no_env).unwrap_err();
            assert!(
                err.contains(&format!("invalid option {key}")),
                "{bad}: {err}"
            );
        }
    }
}
