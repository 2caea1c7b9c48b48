//! The `options:` of a Space and Time storage, under the Python module's names, with its
//! environment variables as fall-backs.

use std::time::Duration;

use plugin_sdk::Secret;
use serde::Deserialize;

use crate::error::Error;
use crate::sql::TableName;

/// The network API's default base URL (Space and Time's Python SDK 1.1.73).
pub const DEFAULT_API_URL: &str = "https://api.makeinfinite.dev";
/// The Gateway's default base URL, where API keys are exchanged for access tokens.
pub const DEFAULT_AUTH_URL: &str = "https://proxy.api.makeinfinite.dev";
/// The `originApp` header's default: tags this plugin's statements in the service's query log.
pub const DEFAULT_ORIGIN_APP: &str = "vcon-host";

/// The `options:` of a Space and Time storage. Unknown keys are refused so a typo cannot
/// silently fall back to a default; empty values fall back to the environment variables the
/// Python module reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// The API key (`sxt_...`); `SXT_API_KEY` when empty.
    pub api_key: Secret,
    /// The table, `SCHEMA.TABLE`; `SXT_VCON_TABLENAME` when empty.
    pub table_name: String,
    /// A biscuit for writes (`dml_insert`, `dml_update`, `dml_delete`);
    /// `SXT_VCON_TABLE_WRITE_BISCUIT` when empty (or the Python module's misspelt
    /// `SXT_VCON_TABLE_WRITE_BISCUI`).
    pub write_biscuit: Secret,
    /// A biscuit for reads (`dql_select`); `SXT_VCON_TABLE_READ_BISCUIT` when empty; the write
    /// biscuit when neither is set.
    pub read_biscuit: Secret,
    /// The table's private key (64 hex digits): when given, the plugin mints the read, write
    /// and DDL biscuits itself, and `provision` can create the table. Explicit biscuits win.
    pub biscuit_private_key: Secret,
    /// Authenticate when the storage opens, so a wrong API key is reported at start-up.
    pub authenticate: bool,
    /// Renew the access token when it is about to expire or is refused; without it an expired
    /// token is an `Unauthorized` error.
    pub auto_reconnect: bool,
    /// The network API's base URL.
    pub api_url: String,
    /// The Gateway's base URL (API-key login).
    pub auth_url: String,
    /// The `originApp` header.
    pub origin_app: String,
    /// The access type `provision` creates the table with: `permissioned`, `public_read`,
    /// `public_append` or `public_write`.
    pub access_type: String,
    /// Seconds one HTTP request may take.
    pub timeout: f64,
    /// How many times a failed request is retried (connection errors, time-outs, 429, 5xx).
    pub retries: u32,
    /// Accepted and ignored: the Python module's `default_options` carry it.
    pub name: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_key: Secret::default(),
            table_name: String::new(),
            write_biscuit: Secret::default(),
            read_biscuit: Secret::default(),
            biscuit_private_key: Secret::default(),
            authenticate: true,
            auto_reconnect: true,
            api_url: DEFAULT_API_URL.to_owned(),
            auth_url: DEFAULT_AUTH_URL.to_owned(),
            origin_app: DEFAULT_ORIGIN_APP.to_owned(),
            access_type: "permissioned".to_owned(),
            timeout: 30.0,
            retries: 3,
            name: None,
        }
    }
}

/// The options with the environment applied and everything checked.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) api_key: Secret,
    pub(crate) table: TableName,
    pub(crate) write_biscuit: Option<Secret>,
    pub(crate) read_biscuit: Option<Secret>,
    pub(crate) private_key: Option<Secret>,
    pub(crate) authenticate: bool,
    pub(crate) auto_reconnect: bool,
    pub(crate) api_url: String,
    pub(crate) auth_url: String,
    pub(crate) origin_app: String,
    pub(crate) access_type: String,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
}

impl Options {
    /// Applies the environment (`env` looks a variable up) and checks the result.
    pub(crate) fn resolve(self, env: impl Fn(&str) -> Option<String>) -> Result<Resolved, Error> {
        let from_env = |value: Secret, names: &[&str]| -> Option<Secret> {
            if !value.is_empty() {
                return Some(value);
            }
            names
                .iter()
                .find_map(|name| env(name).filter(|v| !v.trim().is_empty()))
                .map(|v| Secret::from(v.trim().to_owned()))
        };
        let api_key = from_env(self.api_key, &["SXT_API_KEY"]).ok_or_else(|| {
            Error::Options(
                "api_key is required: set the option api_key (e.g. \"${SXT_API_KEY}\") or the \
                 environment variable SXT_API_KEY"
                    .to_owned(),
            )
        })?;
        let table_text = if self.table_name.trim().is_empty() {
            env("SXT_VCON_TABLENAME").unwrap_or_default()
        } else {
            self.table_name
        };
        if table_text.trim().is_empty() {
            return Err(Error::Options(
                "table_name is required: set the option table_name (SCHEMA.TABLE, e.g. \
                 VCON.VCONS) or the environment variable SXT_VCON_TABLENAME"
                    .to_owned(),
            ));
        }
        let table = TableName::parse(&table_text).map_err(Error::Options)?;
        let write_biscuit = from_env(
            self.write_biscuit,
            &[
                "SXT_VCON_TABLE_WRITE_BISCUIT",
                "SXT_VCON_TABLE_WRITE_BISCUI",
            ],
        );
        let read_biscuit = from_env(self.read_biscuit, &["SXT_VCON_TABLE_READ_BISCUIT"]);
        let private_key = Some(self.biscuit_private_key).filter(|k| !k.is_empty());
        for (name, url) in [("api_url", &self.api_url), ("auth_url", &self.auth_url)] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Error::Options(format!(
                    "invalid option {name}: {url:?} is not an http(s) URL"
                )));
            }
        }
        if !matches!(
            self.access_type.as_str(),
            "permissioned" | "public_read" | "public_append" | "public_write"
        ) {
            return Err(Error::Options(format!(
                "invalid option access_type: {:?}; use permissioned, public_read, \
                 public_append or public_write",
                self.access_type
            )));
        }
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 3600.0) {
            return Err(Error::Options(format!(
                "invalid option timeout: {} seconds; use a number of seconds between 0 and 3600",
                self.timeout
            )));
        }
        if self
            .origin_app
            .chars()
            .any(|c| c.is_control() || !c.is_ascii())
        {
            return Err(Error::Options(
                "invalid option origin_app: use printable ASCII".to_owned(),
            ));
        }
        Ok(Resolved {
            api_key,
            table,
            write_biscuit,
            read_biscuit,
            private_key,
            authenticate: self.authenticate,
            auto_reconnect: self.auto_reconnect,
            api_url: self.api_url.trim_end_matches('/').to_owned(),
            auth_url: self.auth_url.trim_end_matches('/').to_owned(),
            origin_app: self.origin_app,
            access_type: self.access_type,
            timeout: Duration::from_secs_f64(self.timeout),
            retries: self.retries,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use plugin_sdk::parse_options;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn python_names_parse_with_defaults() {
        let options: Options = parse_options(
            r#"{"name": "spaceandtime", "api_key": "sxt_k", "table_name": "vcon.vcons",
                "write_biscuit": "w", "read_biscuit": "r", "authenticate": false,
                "auto_reconnect": true}"#,
        )
        .unwrap();
        let resolved = options.resolve(no_env).unwrap();
        assert_eq!(resolved.api_key.expose(), "sxt_k");
        assert_eq!(resolved.table.sql(), "VCON.VCONS");
        assert_eq!(resolved.write_biscuit.unwrap().expose(), "w");
        assert_eq!(resolved.read_biscuit.unwrap().expose(), "r");
        assert!(!resolved.authenticate);
        assert_eq!(resolved.api_url, DEFAULT_API_URL);
        assert_eq!(resolved.auth_url, DEFAULT_AUTH_URL);
        assert_eq!(resolved.timeout, Duration::from_secs(30));
        assert_eq!(resolved.retries, 3);
    }

    #[test]
    fn environment_fallbacks() {
        let env = |name: &str| match name {
            "SXT_API_KEY" => Some("sxt_env".to_owned()),
            "SXT_VCON_TABLENAME" => Some("s.t".to_owned()),
            "SXT_VCON_TABLE_WRITE_BISCUI" => Some("w-misspelt".to_owned()),
            "SXT_VCON_TABLE_READ_BISCUIT" => Some("r-env".to_owned()),
            _ => None,
        };
        let resolved = Options::default().resolve(env).unwrap();
        assert_eq!(resolved.api_key.expose(), "sxt_env");
        assert_eq!(resolved.table.sql(), "S.T");
        assert_eq!(resolved.write_biscuit.unwrap().expose(), "w-misspelt");
        assert_eq!(resolved.read_biscuit.unwrap().expose(), "r-env");
        // An option wins over the environment.
        let options = Options {
            api_key: Secret::from("sxt_opt".to_owned()),
            table_name: "a.b".into(),
            ..Options::default()
        };
        let resolved = options.resolve(env).unwrap();
        assert_eq!(resolved.api_key.expose(), "sxt_opt");
        assert_eq!(resolved.table.sql(), "A.B");
    }

    #[test]
    fn missing_and_bad_values_are_refused() {
        let err = Options::default().resolve(no_env).unwrap_err().to_string();
        assert!(
            err.contains("api_key") && err.contains("SXT_API_KEY"),
            "{err}"
        );
        let with_key = || Options {
            api_key: Secret::from("k".to_owned()),
            table_name: "v.t".into(),
            ..Options::default()
        };
        let err = Options {
            table_name: String::new(),
            ..with_key()
        }
        .resolve(no_env)
        .unwrap_err()
        .to_string();
        assert!(err.contains("table_name"), "{err}");
        let err = Options {
            table_name: "vcons".into(),
            ..with_key()
        }
        .resolve(no_env)
        .unwrap_err()
        .to_string();
        assert!(err.contains("SCHEMA.TABLE"), "{err}");
        let err = Options {
            table_name: "v.t; DROP TABLE x".into(),
            ..with_key()
        }
        .resolve(no_env)
        .unwrap_err()
        .to_string();
        assert!(err.contains("identifier"), "{err}");
        for bad in [
            Options {
                api_url: "ftp://x".into(),
                ..with_key()
            },
            Options {
                access_type: "open".into(),
                ..with_key()
            },
            Options {
                timeout: 0.0,
                ..with_key()
            },
        ] {
            assert!(bad.resolve(no_env).is_err());
        }
    }

    #[test]
    fn unknown_options_are_refused_and_secrets_hidden() {
        let err = parse_options::<Options>(r#"{"api_keys": "x"}"#).unwrap_err();
        assert!(err.message().contains("api_keys"), "{err}");
        let options: Options =
            parse_options(r#"{"api_key": "sxt_hunter2", "write_biscuit": "EnBiscuit"}"#).unwrap();
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("EnBiscuit"),
            "{shown}"
        );
    }
}
