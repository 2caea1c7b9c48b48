//! The `options:` of an API storage, under the names of the vCon Server guide's API storage.

use std::collections::BTreeMap;
use std::time::Duration;

use plugin_sdk::Secret;
use serde::Deserialize;

use crate::error::Error;

/// The `options:` of an API storage. Unknown keys are refused so a typo cannot silently fall
/// back to a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// The API's base URL; vCons are at `{base_url}/vcons` (required).
    pub base_url: String,
    /// Sent as `Authorization: Bearer {api_key}` when not empty.
    pub api_key: Secret,
    /// Seconds one request may take (connecting, sending, answering).
    pub timeout: f64,
    /// Extra headers sent with every request (a tenant, an `X-Api-Key`...). Values of headers
    /// whose names look like credentials are never logged.
    pub headers: BTreeMap<String, String>,
    /// How many times a failed request is retried (connection errors, time-outs, 429, 5xx).
    pub retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            api_key: Secret::default(),
            timeout: 30.0,
            headers: BTreeMap::new(),
            retries: 3,
        }
    }
}

impl Options {
    /// The base URL without a trailing slash, checked to be http(s).
    pub(crate) fn base(&self) -> Result<String, Error> {
        let base = self.base_url.trim().trim_end_matches('/');
        if base.is_empty() {
            return Err(Error::Options(
                "base_url is required: the API's base URL, e.g. https://vcons.example.com/api/v1 \
                 (vCons are POSTed to {base_url}/vcons)"
                    .to_owned(),
            ));
        }
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#', ' '])) {
            return Err(Error::Options(format!(
                "invalid option base_url: {base:?} is not an http(s) URL without query or \
                 fragment"
            )));
        }
        Ok(base.to_owned())
    }

    /// The time-out, checked.
    pub(crate) fn timeout(&self) -> Result<Duration, Error> {
        if self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 3600.0 {
            Ok(Duration::from_secs_f64(self.timeout))
        } else {
            Err(Error::Options(format!(
                "invalid option timeout: {} seconds; use a number of seconds between 0 and 3600",
                self.timeout
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use plugin_sdk::parse_options;

    #[test]
    fn guide_names_parse_with_defaults() {
        let options: Options = parse_options(
            r#"{"base_url": "https://api.example.com/v1/", "api_key": "k",
                "headers": {"X-Tenant": "acme"}}"#,
        )
        .unwrap();
        assert_eq!(options.base().unwrap(), "https://api.example.com/v1");
        assert_eq!(options.timeout().unwrap(), Duration::from_secs(30));
        assert_eq!(options.retries, 3);
        assert_eq!(options.headers["X-Tenant"], "acme");
        assert!(!format!("{options:?}").contains("\"k\""));
        let options: Options =
            parse_options(r#"{"base_url": "http://h", "timeout": 2.5}"#).unwrap();
        assert_eq!(options.timeout().unwrap(), Duration::from_millis(2500));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Options::default()
            .base()
            .unwrap_err()
            .to_string()
            .contains("base_url"));
        for bad in [
            "ftp://h",
            "h/v1",
            "https://",
            "https://h/x?key=1",
            "http://h#f",
        ] {
            let options = Options {
                base_url: bad.into(),
                ..Options::default()
            };
            assert!(options.base().is_err(), "{bad}");
        }
        let options = Options {
            timeout: -1.0,
            ..Options::default()
        };
        assert!(options.timeout().is_err());
        let err = parse_options::<Options>(r#"{"base-url": "http://h"}"#).unwrap_err();
        assert!(err.message().contains("base-url"), "{err}");
    }
}
