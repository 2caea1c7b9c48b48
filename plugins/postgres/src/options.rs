//! The `options:` of a postgres storage, checked in one place ([`Options::check`]) into the
//! [`Settings`] the storage runs on, and [`TableName`], the one piece of text that becomes part
//! of an SQL statement without being a parameter (SQL cannot bind an identifier), so it is
//! validated against a strict pattern and then quoted.
//!
//! The connection options carry the Python module's names and defaults (`host`, `port`,
//! `database`, `user`, `password`, `table_name`), so a `storages:` entry of the Python server's
//! `config.yml` opens unchanged (its unused `name` key included). `url` is the alternative for
//! everything about the connection in one string.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use plugin_sdk::Secret;
use serde::Deserialize;

/// The table the Python server's `storage.postgres` writes, and so the default here.
pub const DEFAULT_TABLE: &str = "vcons";

/// The Python module's defaults for the connection, kept so its configurations mean the same.
pub const DEFAULT_HOST: &str = "localhost";
/// The PostgreSQL port.
pub const DEFAULT_PORT: u16 = 5432;
/// The Python module's default database.
pub const DEFAULT_DATABASE: &str = "vcon_db";
/// The Python module's default user.
pub const DEFAULT_USER: &str = "postgres";

/// The largest `pool_size`: PostgreSQL's own default `max_connections` is 100, and the host
/// bounds the calls in flight per storage anyway.
pub const MAX_POOL_SIZE: u32 = 256;

/// The `options:` of a postgres storage. Unknown keys are refused, so a misspelt option is an
/// error at start-up instead of a silent default. Connection fields are optional so that a
/// `url` given together with one of them can be refused (one place says where to connect).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// `postgres://user:password@host:port/database?sslmode=require`: everything about the
    /// connection in one string (a secret, as it may hold the password). Excludes `host`,
    /// `port`, `database`, `user` and `password`.
    pub url: Option<Secret>,
    /// The server's host name, IP address, or a Unix socket directory (`/var/run/postgresql`).
    pub host: Option<String>,
    /// The server's port; the Python module also accepts it as a string.
    #[serde(deserialize_with = "plugin_sdk::number_or_string")]
    pub port: Option<u16>,
    /// The database.
    pub database: Option<String>,
    /// The role to connect as.
    pub user: Option<String>,
    /// The role's password (never printed).
    pub password: Option<Secret>,
    /// The table holding the vCons; a plain identifier (see [`TableName`]).
    pub table_name: String,
    /// TLS: `disable`, `prefer` (the default, as libpq's), `require`, `verify-ca`,
    /// `verify-full`.
    pub sslmode: Option<SslMode>,
    /// The CA certificates (a PEM file) `verify-ca` and `verify-full` trust; the operating
    /// system's store when absent.
    pub sslrootcert: Option<PathBuf>,
    /// The most connections this storage opens (they are opened on demand and kept).
    #[serde(deserialize_with = "plugin_sdk::number_or_string")]
    pub pool_size: Option<u32>,
    /// Seconds to wait for a connection: a new one to the server, or a free one of the pool
    /// when all are busy. Then the call answers `Unavailable` (retried by the host).
    #[serde(deserialize_with = "plugin_sdk::number_or_string")]
    pub connect_timeout: Option<u64>,
    /// Milliseconds a statement may run before the server cancels it (`0`: no limit). Sent
    /// at connection start-up, so it costs no round trip.
    #[serde(deserialize_with = "plugin_sdk::number_or_string")]
    pub statement_timeout: Option<u64>,
    /// Create the table when missing (running the migrations at open), and record a table of
    /// the Python server as adopted. With `false`, the schema is managed with `provision` only.
    pub create: bool,
    /// The Python module's `name` option, which it never used: accepted and ignored, so a
    /// Python `config.yml` needs no edit.
    pub name: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            url: None,
            host: None,
            port: None,
            database: None,
            user: None,
            password: None,
            table_name: DEFAULT_TABLE.to_owned(),
            sslmode: None,
            sslrootcert: None,
            pool_size: None,
            connect_timeout: None,
            statement_timeout: None,
            create: true,
            name: None,
        }
    }
}

/// The default `pool_size`.
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// The default `connect_timeout`, in seconds.
pub const DEFAULT_CONNECT_TIMEOUT_S: u64 = 10;
/// The default `statement_timeout`, in milliseconds: long enough for a batch of large
/// documents, short enough that a stuck statement frees its connection.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 60_000;

/// libpq's `sslmode` values, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate; else plain.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (encryption, no authentication).
    Require,
    /// TLS, and the certificate must chain to a trusted CA (any host name).
    VerifyCa,
    /// TLS, a trusted chain, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// What the driver is told: it knows only disable/prefer/require; the verify modes are
    /// `require` plus a certificate verifier (module `tls`).
    pub(crate) fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            Self::Disable => Driver::Disable,
            Self::Prefer => Driver::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Driver::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a storage needs, derived from checked [`Options`].
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The driver's connection settings (host, port, database, user, password, timeouts).
    pub(crate) pg: tokio_postgres::Config,
    /// TLS.
    pub(crate) sslmode: SslMode,
    /// The CA file for the verify modes.
    pub(crate) sslrootcert: Option<PathBuf>,
    /// The table.
    pub(crate) table: TableName,
    /// The pool's size.
    pub(crate) pool_size: usize,
    /// How long to wait for a connection.
    pub(crate) connect_timeout: Duration,
    /// The server-side statement timeout in milliseconds (0: none).
    pub(crate) statement_timeout_ms: u64,
    /// Whether open creates (or adopts) the table.
    pub(crate) create: bool,
}

impl Settings {
    /// Where the storage connects, for messages and `status`: `host:port/database as user`,
    /// never the password.
    pub(crate) fn target(&self) -> String {
        use tokio_postgres::config::Host;
        let hosts: Vec<String> = self
            .pg
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = self.pg.get_ports().first().copied().unwrap_or(DEFAULT_PORT);
        format!(
            "{}:{port}/{} as {}",
            hosts.join(","),
            self.pg.get_dbname().unwrap_or("?"),
            self.pg.get_user().unwrap_or("?")
        )
    }
}

impl Options {
    /// Checks what serde cannot (a safe table name, sane sizes, one way of saying where to
    /// connect) and builds the driver's settings. Called once at open, so a mistake is reported
    /// at start-up with the option's name, not with the first vCon. The message never contains
    /// the password or the `url`.
    pub(crate) fn check(&self) -> Result<Settings, String> {
        let table = TableName::new(&self.table_name)?;
        let pool_size = self.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
        if pool_size == 0 || pool_size > MAX_POOL_SIZE {
            return Err(format!(
                "invalid option pool_size {pool_size}: the most connections this storage opens \
                 must be between 1 and {MAX_POOL_SIZE}"
            ));
        }
        let connect_timeout_s = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT_S);
        if connect_timeout_s == 0 || connect_timeout_s > 3600 {
            return Err(format!(
                "invalid option connect_timeout {connect_timeout_s}: seconds to wait for a \
                 connection, between 1 and 3600"
            ));
        }
        let statement_timeout_ms = self
            .statement_timeout
            .unwrap_or(DEFAULT_STATEMENT_TIMEOUT_MS);
        if statement_timeout_ms > i32::MAX as u64 {
            return Err(format!(
                "invalid option statement_timeout {statement_timeout_ms}: milliseconds, at most \
                 {} (0 for no limit)",
                i32::MAX
            ));
        }

        let (mut pg, url_sslmode, url_rootcert) = match &self.url {
            Some(url) => {
                let given: Vec<&str> = [
                    ("host", self.host.is_some()),
                    ("port", self.port.is_some()),
                    ("database", self.database.is_some()),
                    ("user", self.user.is_some()),
                    ("password", self.password.is_some()),
                ]
                .iter()
                .filter(|(_, given)| *given)
                .map(|(name, _)| *name)
                .collect();
                if !given.is_empty() {
                    return Err(format!(
                        "invalid options: `url` says where to connect, so {} cannot be given \
                         beside it; put everything in the url or leave the url out",
                        given.join(", ")
                    ));
                }
                parse_url(url.expose())?
            }
            None => {
                let mut pg = tokio_postgres::Config::new();
                pg.host(self.host.as_deref().unwrap_or(DEFAULT_HOST))
                    .port(self.port.unwrap_or(DEFAULT_PORT))
                    .dbname(self.database.as_deref().unwrap_or(DEFAULT_DATABASE))
                    .user(self.user.as_deref().unwrap_or(DEFAULT_USER));
                if let Some(password) = self.password.as_ref().filter(|p| !p.is_empty()) {
                    pg.password(password.expose());
                }
                (pg, None, None)
            }
        };

        let sslmode = match (self.sslmode, url_sslmode) {
            (Some(_), Some(_)) => {
                return Err(
                    "invalid options: sslmode is given both as an option and in the url; keep \
                     one"
                    .to_owned(),
                )
            }
            (Some(mode), None) | (None, Some(mode)) => mode,
            (None, None) => SslMode::default(),
        };
        let sslrootcert = match (&self.sslrootcert, url_rootcert) {
            (Some(_), Some(_)) => {
                return Err(
                    "invalid options: sslrootcert is given both as an option and in the url; \
                     keep one"
                        .to_owned(),
                )
            }
            (Some(path), None) => Some(path.clone()),
            (None, from_url) => from_url,
        };
        if sslrootcert.is_some() && !matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
            return Err(format!(
                "invalid option sslrootcert: it is used only to verify the server's certificate, \
                 with sslmode verify-ca or verify-full (sslmode is {sslmode})"
            ));
        }

        pg.ssl_mode(sslmode.driver_mode());
        pg.connect_timeout(Duration::from_secs(connect_timeout_s));
        if pg.get_application_name().is_none() {
            pg.application_name("vcon-host");
        }
        if statement_timeout_ms > 0 {
            // A start-up option: applies from the first statement, at no extra round trip.
            let timeout = format!("-c statement_timeout={statement_timeout_ms}");
            let options = match pg.get_options() {
                Some(existing) if !existing.trim().is_empty() => format!("{existing} {timeout}"),
                _ => timeout,
            };
            pg.options(&options);
        }
        if pg.get_hosts().is_empty() && pg.get_hostaddrs().is_empty() {
            pg.host(DEFAULT_HOST);
        }
        if pg.get_user().is_none() {
            pg.user(DEFAULT_USER);
        }
        if pg.get_dbname().is_none() {
            pg.dbname(DEFAULT_DATABASE);
        }

        Ok(Settings {
            pg,
            sslmode,
            sslrootcert,
            table,
            pool_size: pool_size as usize,
            connect_timeout: Duration::from_secs(connect_timeout_s),
            statement_timeout_ms,
            create: self.create,
        })
    }
}

/// Parses a `postgres://` URL. `sslmode` and `sslrootcert` are taken out of its query first,
/// because the driver knows neither `verify-ca`/`verify-full` nor `sslrootcert`; the rest is the
/// driver's. Errors never repeat the URL (it may hold a password).
fn parse_url(
    url: &str,
) -> Result<(tokio_postgres::Config, Option<SslMode>, Option<PathBuf>), String> {
    let url = url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(
            "invalid option url: it must start with postgres:// or postgresql:// \
             (postgres://user:password@host:5432/database?sslmode=require)"
                .to_owned(),
        );
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut sslmode = None;
    let mut rootcert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                let value = percent_decode(value)?;
                sslmode = Some(SslMode::parse(&value).ok_or_else(|| {
                    format!(
                        "invalid option url: sslmode={value:?} is not one of disable, prefer, \
                         require, verify-ca, verify-full"
                    )
                })?);
            }
            "sslrootcert" => rootcert = Some(PathBuf::from(percent_decode(value)?)),
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let pg = rebuilt
        .parse::<tokio_postgres::Config>()
        .map_err(|err| format!("invalid option url: {err}"))?;
    Ok((pg, sslmode, rootcert))
}

/// `%XX` escapes of a URL query value (the driver decodes the rest of the URL itself).
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "invalid option url: a bad %-escape in its query".to_owned())?;
                out.push(hex);
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "invalid option url: its query is not UTF-8".to_owned())
}

/// A validated table name: `^[A-Za-z_][A-Za-z0-9_]{0,62}$`, not the migrations table's name.
/// It is the only text ever interpolated into SQL, and it is also double-quoted there, so it can
/// never be read as anything but a name (and its case is kept, as the Python module's peewee
/// quotes it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl TableName {
    /// PostgreSQL's identifier limit (`NAMEDATALEN - 1`).
    pub const MAX_LEN: usize = 63;

    /// Validates `name`, explaining the rule when it is refused.
    pub fn new(name: &str) -> Result<Self, String> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || !rest_ok || name.len() > Self::MAX_LEN {
            return Err(format!(
                "invalid option table_name {name:?}: a table name must be a letter or `_` \
                 followed by at most {} letters, digits or `_` (it is used as an SQL identifier, \
                 so nothing else is accepted)",
                Self::MAX_LEN - 1
            ));
        }
        if name.eq_ignore_ascii_case(crate::schema::MIGRATIONS_TABLE) {
            return Err(format!(
                "invalid option table_name {name:?}: that is the table where this plugin records \
                 its migrations"
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as given (for messages, reports, and as a bound parameter).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name double-quoted for SQL. Safe because the validated name contains no quote.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// A related object's name (`{table}_{suffix}`, an index), double-quoted. When that would
    /// pass PostgreSQL's 63-byte limit (which silently truncates, so two long table names could
    /// share an index name), the table part is shortened and a hash of the whole name added.
    pub fn quoted_with_suffix(&self, suffix: &str) -> String {
        let full = format!("{}_{suffix}", self.0);
        if full.len() <= Self::MAX_LEN {
            return format!("\"{full}\"");
        }
        let hash = fnv1a(self.0.as_bytes());
        let keep = Self::MAX_LEN - suffix.len() - 10;
        format!("\"{}_{hash:08x}_{suffix}\"", &self.0[..keep])
    }
}

/// A small stable hash (32-bit FNV-1a) for shortened identifiers.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Options, plugin_sdk::StorageError> {
        plugin_sdk::parse_options(json)
    }

    #[test]
    fn python_options_open_unchanged() {
        let options = parse(
            r#"{"name": "postgres", "database": "vcon_db", "user": "postgres",
                "password": "secret", "host": "db", "port": "5433", "table_name": "vcons"}"#,
        )
        .unwrap();
        let settings = options.check().unwrap();
        assert_eq!(settings.target(), "db:5433/vcon_db as postgres");
        assert_eq!(settings.pg.get_password(), Some(&b"secret"[..]));
        assert_eq!(settings.table.as_str(), "vcons");
        assert!(!format!("{options:?}").contains("secret"));
    }

    #[test]
    fn defaults_are_the_python_modules() {
        let settings = Options::default().check().unwrap();
        assert_eq!(settings.target(), "localhost:5432/vcon_db as postgres");
        assert_eq!(settings.pool_size, 10);
        assert_eq!(settings.sslmode, SslMode::Prefer);
        assert_eq!(settings.connect_timeout, Duration::from_secs(10));
        assert_eq!(settings.pg.get_application_name(), Some("vcon-host"));
        assert_eq!(
            settings.pg.get_options(),
            Some("-c statement_timeout=60000")
        );
        assert!(settings.create);
    }

    #[test]
    fn a_url_says_everything_or_nothing() {
        let options = parse(
            r#"{"url": "postgres://u:pw@h:6000/d?sslmode=verify-full&sslrootcert=%2Fca.pem&options=-c%20search_path%3Dv",
                "statement_timeout": 0}"#,
        )
        .unwrap();
        let settings = options.check().unwrap();
        assert_eq!(settings.target(), "h:6000/d as u");
        assert_eq!(settings.sslmode, SslMode::VerifyFull);
        assert_eq!(settings.sslrootcert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(settings.pg.get_options(), Some("-c search_path=v"));
        assert!(!format!("{options:?}").contains("pw"));
        assert_eq!(percent_decode("/a%20b+c.pem").unwrap(), "/a b+c.pem");
        assert!(percent_decode("%zz").is_err());

        let err = parse(r#"{"url": "postgres://h/d", "host": "x", "password": "p"}"#)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(err.contains("host, password"), "{err}");
        let err = parse(r#"{"url": "postgres://h/d?sslmode=require", "sslmode": "disable"}"#)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(err.contains("sslmode"), "{err}");
        let err = parse(r#"{"url": "mysql://u:hunter2@h/d"}"#)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse(r#"{"url": "postgres://u:hunter2@h/d?bogus=1"}"#)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(!err.contains("hunter2") && err.contains("url"), "{err}");
    }

    #[test]
    fn numbers_may_be_strings_and_are_range_checked() {
        let options = parse(r#"{"pool_size": "3", "connect_timeout": 2, "port": 5433}"#).unwrap();
        let settings = options.check().unwrap();
        assert_eq!(settings.pool_size, 3);
        assert_eq!(settings.connect_timeout, Duration::from_secs(2));
        for bad in [
            r#"{"port": 70000}"#,
            r#"{"port": "x"}"#,
            r#"{"pool_size": -1}"#,
            r#"{"sslmode": "verify"}"#,
            r#"{"table": "vcons"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for bad in [
            r#"{"pool_size": 0}"#,
            r#"{"pool_size": 1000}"#,
            r#"{"connect_timeout": 0}"#,
            r#"{"statement_timeout": 99999999999}"#,
            r#"{"sslrootcert": "/ca.pem"}"#,
            r#"{"table_name": "vcons; DROP TABLE vcons; --"}"#,
        ] {
            let err = parse(bad).unwrap().check().unwrap_err();
            assert!(err.contains("invalid option"), "{bad}: {err}");
        }
    }

    #[test]
    fn table_names_are_plain_identifiers() {
        for name in ["vcons", "_x", "V2", "a_b_9", &"a".repeat(63)] {
            assert_eq!(
                TableName::new(name).unwrap().quoted(),
                format!("\"{name}\"")
            );
        }
        for name in [
            "",
            "vcons; DROP TABLE x",
            "vcons\"; DROP TABLE x; --",
            "9lives",
            "with space",
            "dash-ed",
            "public.vcons",
            "ünï",
            "a\0b",
            &"a".repeat(64),
            "vcon_host_schema_migrations",
        ] {
            let err = TableName::new(name).unwrap_err();
            assert!(err.contains("table_name"), "{err}");
        }
    }

    #[test]
    fn derived_names_fit_and_stay_distinct() {
        let short = TableName::new("vcons").unwrap();
        assert_eq!(
            short.quoted_with_suffix("created_at_idx"),
            "\"vcons_created_at_idx\""
        );
        let a = TableName::new(&format!("{}a", "x".repeat(62))).unwrap();
        let b = TableName::new(&format!("{}b", "x".repeat(62))).unwrap();
        let (qa, qb) = (
            a.quoted_with_suffix("created_at_idx"),
            b.quoted_with_suffix("created_at_idx"),
        );
        assert_ne!(qa, qb);
        assert_eq!(qa.len(), TableName::MAX_LEN + 2, "{qa}");
        assert!(qa.ends_with("_created_at_idx\""), "{qa}");
    }
}
