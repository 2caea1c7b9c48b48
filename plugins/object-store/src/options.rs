//! The `options:` of an object-store storage: the Python `storage.s3` names as they are, plus a
//! `url` form for every store object_store reaches, the store's own keys, and the client's
//! time-outs, retries and batch concurrency.

use std::collections::BTreeMap;
use std::fmt;

use plugin_sdk::Secret;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The default number of vCons a batch works on at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;
/// The default time-out of one HTTP request, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The default time-out for opening a connection, in milliseconds.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// The default number of client-side retries of a failed request. Small on purpose: the host
/// owns the real retry policy (back-off, then the dead-letter list), so the client only smooths
/// over a blip instead of holding a worker for minutes.
pub const DEFAULT_MAX_RETRIES: usize = 3;
/// The default bound on the time spent retrying one request, in milliseconds.
pub const DEFAULT_RETRY_TIMEOUT_MS: u64 = 15_000;

/// The `options:` of an object-store storage. Unknown keys are refused, so a misspelt option
/// cannot silently fall back to a default (or to an environment variable).
///
/// Two ways to name the store:
///
/// - the Python `storage.s3` options, as they are: `aws_bucket` (required), `aws_region`,
///   `endpoint_url` (an S3-compatible service), `aws_access_key_id`, `aws_secret_access_key`,
///   `s3_path` (the prefix);
/// - `url`: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
///   `file:///absolute/dir`, or a store's `https://` form; the store's own configuration keys
///   go in `store_options` (object_store's names, e.g. `google_service_account`,
///   `azure_storage_account_name`, `aws_virtual_hosted_style_request`).
///
/// Credentials left out are taken from the store's usual environment variables (`AWS_*`,
/// `GOOGLE_*`, `AZURE_*`) and its ambient sources (instance metadata, workload identity).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Python name: the S3 bucket.
    pub aws_bucket: Option<String>,
    /// Python name: the S3 region (object_store's default, `us-east-1`, when absent).
    pub aws_region: Option<String>,
    /// Python name: the endpoint of an S3-compatible service (`http://127.0.0.1:9000`); plain
    /// `http` is allowed when the endpoint says so.
    pub endpoint_url: Option<String>,
    /// Python name: the access key id.
    pub aws_access_key_id: Option<Secret>,
    /// Python name: the secret access key.
    pub aws_secret_access_key: Option<Secret>,
    /// Python name: the prefix of every key (a trailing `/` is trimmed).
    pub s3_path: Option<String>,
    /// The store as a URL, instead of `aws_bucket` and `s3_path`.
    pub url: Option<String>,
    /// The store's own configuration keys and values (object_store's names), applied last.
    /// Values are kept as secrets: they often are keys or tokens.
    pub store_options: BTreeMap<String, Secret>,
    /// `gzip` (or `true`) to store documents gzip-compressed; `none` (or `false`, the default)
    /// to store them as sent.
    pub compression: Compression,
    /// How many vCons a batch (`save_many`, `get_many`, `delete_many`) works on at once.
    pub max_concurrency: usize,
    /// The time-out of one HTTP request, in milliseconds.
    pub timeout_ms: u64,
    /// The time-out for opening a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How many times the client retries a failed request (throttling, 5xx, connection
    /// errors) before reporting it as `unavailable` to the host, which then retries later.
    pub max_retries: usize,
    /// The bound on the time spent retrying one request, in milliseconds.
    pub retry_timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            aws_bucket: None,
            aws_region: None,
            endpoint_url: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            s3_path: None,
            url: None,
            store_options: BTreeMap::new(),
            compression: Compression::None,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_timeout_ms: DEFAULT_RETRY_TIMEOUT_MS,
        }
    }
}

impl Options {
    /// Refuses numbers the storage cannot work with, naming the option; called once at open so
    /// the mistake is reported before the first vCon.
    pub fn check_numbers(&self) -> Result<(), String> {
        if !(1..=1024).contains(&self.max_concurrency) {
            return Err(format!(
                "invalid option max_concurrency: {} is outside 1..=1024",
                self.max_concurrency
            ));
        }
        if self.timeout_ms == 0 {
            return Err(
                "invalid option timeout_ms: 0 would fail every request; use e.g. 30000".to_owned(),
            );
        }
        if self.connect_timeout_ms == 0 {
            return Err(
                "invalid option connect_timeout_ms: 0 would fail every connection; use e.g. 5000"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// The value of an optional text option, with empty text (an unset `${ENV}` in the config)
    /// meaning absent.
    pub fn text(value: Option<&String>) -> Option<&str> {
        value.map(String::as_str).filter(|s| !s.trim().is_empty())
    }

    /// The value of an optional secret option, with an empty secret meaning absent.
    pub fn secret(value: Option<&Secret>) -> Option<&str> {
        value.map(Secret::expose).filter(|s| !s.is_empty())
    }
}

/// How documents are stored: as sent, or gzip-compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// The bytes as the host sent them (what the Python module writes).
    #[default]
    None,
    /// Gzip, with `Content-Encoding: gzip` where the store keeps headers. Readers detect gzip
    /// by its magic bytes, so a storage can switch either way without rewriting old objects.
    Gzip,
}

impl Compression {
    /// The name shown by `status`.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        }
    }
}

impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CompressionVisitor;

        impl Visitor<'_> for CompressionVisitor {
            type Value = Compression;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"gzip\", \"none\", true or false")
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<Compression, E> {
                Ok(if value {
                    Compression::Gzip
                } else {
                    Compression::None
                })
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Compression, E> {
                match value.trim().to_ascii_lowercase().as_str() {
                    "gzip" | "true" => Ok(Compression::Gzip),
                    "none" | "false" | "" => Ok(Compression::None),
                    _ => Err(E::custom(format!(
                        "{value:?} is not a compression: use \"gzip\" or \"none\""
                    ))),
                }
            }

            fn visit_unit<E: de::Error>(self) -> Result<Compression, E> {
                Ok(Compression::None)
            }
        }

        deserializer.deserialize_any(CompressionVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::{parse_options, ErrorKind};

    #[test]
    fn python_s3_options_parse_as_they_are() {
        let options: Options = parse_options(
            r#"{"aws_access_key_id": "AKIA", "aws_secret_access_key": "shh",
                "aws_bucket": "vcons", "aws_region": "eu-west-1",
                "endpoint_url": "http://127.0.0.1:9000", "s3_path": "archive/"}"#,
        )
        .unwrap();
        assert_eq!(options.aws_bucket.as_deref(), Some("vcons"));
        assert_eq!(options.aws_region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            Options::secret(options.aws_access_key_id.as_ref()),
            Some("AKIA")
        );
        assert_eq!(
            Options::secret(options.aws_secret_access_key.as_ref()),
            Some("shh")
        );
        assert_eq!(options.s3_path.as_deref(), Some("archive/"));
        assert!(!format!("{options:?}").contains("shh"));
    }

    #[test]
    fn defaults() {
        let options: Options = parse_options("{}").unwrap();
        assert_eq!(options, Options::default());
        assert_eq!(options.max_concurrency, 16);
        assert_eq!(options.compression, Compression::None);
        assert!(options.check_numbers().is_ok());
    }

    #[test]
    fn nulls_and_empty_values_mean_absent() {
        let options: Options = parse_options(
            r#"{"aws_region": null, "aws_access_key_id": null, "s3_path": "",
                "endpoint_url": "  ", "compression": null}"#,
        )
        .unwrap();
        assert_eq!(Options::text(options.aws_region.as_ref()), None);
        assert_eq!(Options::text(options.endpoint_url.as_ref()), None);
        assert_eq!(Options::secret(options.aws_access_key_id.as_ref()), None);
        assert_eq!(options.compression, Compression::None);
    }

    #[test]
    fn compression_spellings() {
        for (json, expected) in [
            ("true", Compression::Gzip),
            ("false", Compression::None),
            (r#""gzip""#, Compression::Gzip),
            (r#""GZIP""#, Compression::Gzip),
            (r#""none""#, Compression::None),
        ] {
            let options: Options = parse_options(&format!(r#"{{"compression": {json}}}"#)).unwrap();
            assert_eq!(options.compression, expected, "{json}");
        }
        let err = parse_options::<Options>(r#"{"compression": "zstd"}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("compression"), "{err}");
        assert!(err.message().contains("zstd"), "{err}");
    }

    #[test]
    fn unknown_and_mistyped_options_name_the_key() {
        let err = parse_options::<Options>(r#"{"aws_bucket_name": "x"}"#).unwrap_err();
        assert!(err.message().contains("aws_bucket_name"), "{err}");
        let err = parse_options::<Options>(r#"{"max_concurrency": "many"}"#).unwrap_err();
        assert!(err.message().contains("max_concurrency"), "{err}");
        let err = parse_options::<Options>(r#"{"store_options": {"k": 1}}"#).unwrap_err();
        assert!(err.message().contains("store_options.k"), "{err}");
    }

    #[test]
    fn numbers_are_checked() {
        let mut options = Options {
            max_concurrency: 0,
            ..Options::default()
        };
        assert!(options
            .check_numbers()
            .unwrap_err()
            .contains("max_concurrency"));
        options.max_concurrency = 32;
        options.timeout_ms = 0;
        assert!(options.check_numbers().unwrap_err().contains("timeout_ms"));
    }
}
