//! [`WebhookStorage`]: each operation one HTTP request to the API.
//!
//! - `save`: `POST {base_url}/vcons` with the vCon's JSON, verbatim;
//! - `get`: `GET {base_url}/vcons/{uuid}`; 404 is `None`. The answer is the document, or an
//!   object whose `vcon` member is the document (the vcon-mcp REST API's shape: a vCon's own
//!   `vcon` member is its version string, so the two cannot be confused);
//! - `delete`: `DELETE {base_url}/vcons/{uuid}`; 404 is `false`;
//! - `exists`: a `GET`, answered as whether it found the vCon.

use plugin_sdk::http::{HttpClient, HttpOptions, Request};
use plugin_sdk::{
    Capabilities, ErrorKind, OpenContext, Storage, StorageError, StoragePlugin, VconRecord,
};
use serde_json::Value;

use crate::error::Error;
use crate::options::Options;

/// A storage behind a REST API.
#[derive(Debug)]
pub struct WebhookStorage {
    http: HttpClient,
    base: String,
}

impl WebhookStorage {
    /// Opens a storage from its options; no request is made.
    pub fn open_with(options: Options) -> Result<Self, StorageError> {
        let base = options.base()?;
        let timeout = options.timeout()?;
        let http = HttpClient::new(HttpOptions {
            timeout,
            connect_timeout: timeout.min(std::time::Duration::from_secs(10)),
            retries: options.retries,
            headers: options.headers.into_iter().collect(),
            bearer: Some(options.api_key).filter(|k| !k.is_empty()),
            ..HttpOptions::default()
        })?;
        Ok(Self { http, base })
    }

    fn url_of(&self, uuid: &str) -> Result<String, Error> {
        Ok(format!("{}/vcons/{}", self.base, check_uuid(uuid)?))
    }

    fn fetch(&self, uuid: &str) -> Result<Option<Vec<u8>>, Error> {
        let url = self.url_of(uuid)?;
        let body = match self.http.send(&Request::get(url.as_str())) {
            Ok(response) => response.into_body(),
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let value: Value = serde_json::from_slice(&body).map_err(|err| Error::NotJson {
            url: plugin_sdk::http::loggable_url(&url),
            detail: err.to_string(),
        })?;
        match value {
            // `{"success": true, "vcon": {...}}`: the document is inside.
            Value::Object(mut wrapper) if wrapper.get("vcon").is_some_and(Value::is_object) => {
                let inner = wrapper.remove("vcon").unwrap_or(Value::Null);
                Ok(Some(inner.to_string().into_bytes()))
            }
            Value::Object(_) => Ok(Some(body)),
            other => Err(Error::NotJson {
                url: plugin_sdk::http::loggable_url(&url),
                detail: format!("expected a JSON object, got {}", kind_of(&other)),
            }),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A uuid checked to be 8-4-4-4-12 hex digits, lower-cased: safe as a URL path segment.
fn check_uuid(uuid: &str) -> Result<String, Error> {
    let bytes = uuid.as_bytes();
    let shaped = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if shaped {
        Ok(uuid.to_ascii_lowercase())
    } else {
        Err(Error::BadUuid(uuid.to_owned()))
    }
}

impl Storage for WebhookStorage {
    fn save(&self, record: &VconRecord<'_>) -> Result<(), StorageError> {
        check_uuid(record.uuid)?;
        let request = Request::post(format!("{}/vcons", self.base)).json(record.json.to_vec());
        self.http
            .send(&request)
            .map(|_| ())
            .map_err(|err| err.context(format!("saving vCon {}", record.uuid)))
    }

    fn get(&self, uuid: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.fetch(uuid)?)
    }

    fn delete(&self, uuid: &str) -> Result<bool, StorageError> {
        let url = self.url_of(uuid)?;
        match self.http.send(&Request::delete(url)) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }

    fn exists(&self, uuid: &str) -> Result<bool, StorageError> {
        Ok(self.fetch(uuid)?.is_some())
    }
}

impl StoragePlugin for WebhookStorage {
    type Options = Options;
    const NAME: &'static str = "webhook";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "a REST API that stores vCons: POST {base_url}/vcons, GET and DELETE {base_url}/vcons/{uuid}";
    const CAPABILITIES: Capabilities = Capabilities::GET
        .union(Capabilities::DELETE)
        .union(Capabilities::EXISTS);

    fn option_defaults() -> Value {
        serde_json::json!({
            "base_url": "",
            "api_key": "",
            "timeout": 30,
            "headers": {},
            "retries": 3,
        })
    }

    fn open(options: Options, _: &OpenContext) -> Result<Self, StorageError> {
        Self::open_with(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_checked_before_they_reach_a_url() {
        assert_eq!(
            check_uuid("018F3E2A-7B1C-7D2E-8F90-0123456789AB")
                .ok()
                .as_deref(),
            Some("018f3e2a-7b1c-7d2e-8f90-0123456789ab")
        );
        for bad in [
            "../../admin",
            "018f3e2a-7b1c-7d2e-8f90-0123456789a/",
            "018f3e2a-7b1c-7d2e-8f90-0123456789a?",
            "018f3e2a-7b1c-7d2e-8f90-0123456789",
            "",
        ] {
            assert!(check_uuid(bad).is_err(), "{bad}");
        }
    }
}
