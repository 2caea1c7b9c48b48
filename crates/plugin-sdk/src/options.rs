//! Typed `options:` parsing with errors that name the key.

use serde::de::DeserializeOwned;

use crate::StorageError;

/// Parses a storage's `options:` (a JSON object, as the host passes it) into `T`.
///
/// On failure the error names the key path and what was wrong, e.g.
/// `invalid option pool_size: invalid type: string "ten", expected u32`, and is
/// `InvalidInput`, so the host can prefix it with the config file and line. Define `T` with
/// `#[serde(deny_unknown_fields)]` so a misspelt option is refused instead of ignored, and with
/// `#[serde(alias = "...")]` for the Python server's names.
pub fn parse_options<T: DeserializeOwned>(options_json: &str) -> Result<T, StorageError> {
    let text = if options_json.trim().is_empty() || options_json.trim() == "null" {
        "{}"
    } else {
        options_json
    };
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path.is_empty() || path == "." {
            StorageError::invalid_input(format!("invalid options: {inner}"))
        } else {
            StorageError::invalid_input(format!("invalid option {path}: {inner}"))
        }
    })
}

/// For `#[serde(default, deserialize_with = "plugin_sdk::number_or_string")]` on an
/// `Option<number>` option: a number, or a string holding one. Python modules accept
/// `port: "5432"`, YAML users quote numbers, and a value substituted from `${ENV_VAR}` arrives
/// as a string.
pub fn number_or_string<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64> + std::fmt::Display,
{
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    let number = match Option::<Raw>::deserialize(deserializer)? {
        None => return Ok(None),
        Some(Raw::Number(n)) => n,
        Some(Raw::Text(text)) => text.trim().parse::<u64>().map_err(|_| {
            serde::de::Error::custom(format!(
                "expected a non-negative whole number, found {text:?}"
            ))
        })?,
    };
    T::try_from(number)
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{number} is out of range")))
}

/// A secret option value (a password, a key): readable by the plugin, but never printed by
/// `Debug`, so it cannot leak into a log line or an error message by accident.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret's value, for the one place that needs it (a connection string, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Opts {
        pool_size: u32,
        password: Secret,
        #[serde(alias = "table")]
        table_name: String,
    }

    #[test]
    fn names_the_bad_key() {
        let err = parse_options::<Opts>(r#"{"pool_size": "ten"}"#).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(err.message().contains("pool_size"), "{err}");
        assert!(err.message().contains("ten"), "{err}");
    }

    #[test]
    fn refuses_unknown_keys_and_accepts_aliases() {
        let err = parse_options::<Opts>(r#"{"pool_sise": 3}"#).unwrap_err();
        assert!(err.message().contains("pool_sise"), "{err}");
        let opts: Opts = parse_options(r#"{"table": "v"}"#).unwrap();
        assert_eq!(opts.table_name, "v");
    }

    #[test]
    fn null_and_empty_mean_defaults() {
        assert_eq!(parse_options::<Opts>("null").unwrap().pool_size, 0);
        assert_eq!(parse_options::<Opts>("").unwrap().pool_size, 0);
    }

    #[test]
    fn secrets_do_not_print() {
        let opts: Opts = parse_options(r#"{"password": "hunter2"}"#).unwrap();
        assert!(!format!("{opts:?}").contains("hunter2"));
        assert_eq!(opts.password.expose(), "hunter2");
    }
}
