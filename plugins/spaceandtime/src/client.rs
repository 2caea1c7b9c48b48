//! The Space and Time client: API-key login with a cached access token renewed before it
//! expires (and once more when a statement is refused with 401), and one SQL statement per
//! request with the biscuit that grants it.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plugin_sdk::http::{excerpt, status_error, HttpClient, HttpOptions, Request, Response};
use plugin_sdk::Secret;
use serde_json::Value;

use crate::error::Error;
use crate::options::Resolved;
use crate::sql::TableName;

/// The most time left on a token when it is renewed: renewing early keeps a statement from
/// racing the expiry. A token shorter-lived than four minutes is renewed at three quarters of
/// its life instead.
const MAX_RENEW_MARGIN: Duration = Duration::from_secs(60);

/// A biscuit for a statement, and which option it came from (for the error message).
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// The biscuit, if any was configured.
    pub(crate) biscuit: Option<Secret>,
    /// `read`, `write` or `DDL`.
    pub(crate) which: &'static str,
}

/// An access token and when to renew it.
#[derive(Debug, Clone)]
struct Token {
    value: Secret,
    renew_at: SystemTime,
    expires_at: SystemTime,
}

/// The login answer of the Gateway.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Login {
    access_token: String,
    access_token_expires: f64,
}

/// A connection to Space and Time for one table.
#[derive(Debug)]
pub(crate) struct Client {
    http: HttpClient,
    api_url: String,
    auth_url: String,
    api_key: Secret,
    auto_reconnect: bool,
    table: TableName,
    token: Mutex<Option<Token>>,
}

impl Client {
    /// A client; no request is made yet.
    pub(crate) fn new(options: &Resolved) -> Result<Self, Error> {
        let http = HttpClient::new(HttpOptions {
            timeout: options.timeout,
            connect_timeout: options.timeout.min(Duration::from_secs(10)),
            retries: options.retries,
            headers: vec![("originApp".to_owned(), options.origin_app.clone())],
            ..HttpOptions::default()
        })?;
        Ok(Self {
            http,
            api_url: options.api_url.clone(),
            auth_url: options.auth_url.clone(),
            api_key: options.api_key.clone(),
            auto_reconnect: options.auto_reconnect,
            table: options.table.clone(),
            token: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Token>> {
        // A token left by a panicking holder is still a token.
        self.token.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs in now (replacing any token).
    pub(crate) fn authenticate(&self) -> Result<(), Error> {
        let token = self.login()?;
        *self.lock() = Some(token);
        Ok(())
    }

    /// When the current token expires, for `status`-like reports and tests.
    pub(crate) fn token_expires_at(&self) -> Option<SystemTime> {
        self.lock().as_ref().map(|t| t.expires_at)
    }

    /// `POST {auth_url}/auth/apikey` with the API key.
    fn login(&self) -> Result<Token, Error> {
        let request = Request::post(format!("{}/auth/apikey", self.auth_url))
            .secret_header("apikey", self.api_key.clone())
            .json(b"{}".to_vec());
        let response = self.http.send_raw(&request)?;
        match response.status() {
            200..=299 => {}
            401 | 403 => return Err(Error::BadApiKey(excerpt(response.body()))),
            _ => {
                return Err(Error::Http(status_error(
                    request.method(),
                    request.url(),
                    &response,
                )))
            }
        }
        let login: Login = response
            .json()
            .map_err(|err| Error::Unexpected(format!("login answer: {}", err.message())))?;
        if login.access_token.is_empty() {
            return Err(Error::Unexpected(
                "login answered an empty accessToken".to_owned(),
            ));
        }
        let now = SystemTime::now();
        let expires_ms = login.access_token_expires.max(0.0);
        let expires_at = UNIX_EPOCH + Duration::from_secs_f64(expires_ms / 1000.0);
        let lifetime = expires_at.duration_since(now).map_err(|_| {
            Error::Unexpected(format!(
                "the access token expires at {expires_ms} ms since the epoch, which is already \
                 past on this machine: check its clock"
            ))
        })?;
        let margin = MAX_RENEW_MARGIN.min(lifetime / 4);
        tracing::debug!(
            lifetime_s = lifetime.as_secs_f64(),
            "authenticated to Space and Time"
        );
        Ok(Token {
            value: Secret::from(login.access_token),
            renew_at: expires_at - margin,
            expires_at,
        })
    }

    /// The token to use now: the cached one, or a new one when it is due for renewal.
    fn token(&self) -> Result<Secret, Error> {
        let mut guard = self.lock();
        let now = SystemTime::now();
        if let Some(token) = guard.as_ref() {
            if now < token.renew_at {
                return Ok(token.value.clone());
            }
            if !self.auto_reconnect {
                return if now < token.expires_at {
                    Ok(token.value.clone())
                } else {
                    Err(Error::Token(
                        "the access token has expired and auto_reconnect is false".to_owned(),
                    ))
                };
            }
        }
        let token = self.login()?;
        let value = token.value.clone();
        *guard = Some(token);
        Ok(value)
    }

    /// A new token after `stale` was refused, unless another thread already renewed it.
    fn renew(&self, stale: &Secret) -> Result<Secret, Error> {
        let mut guard = self.lock();
        if let Some(token) = guard.as_ref() {
            if token.value != *stale {
                return Ok(token.value.clone());
            }
        }
        let token = self.login()?;
        let value = token.value.clone();
        *guard = Some(token);
        Ok(value)
    }

    /// Runs one statement needing `operation` with `grant`; answers the JSON answer (`Null`
    /// when the body is not JSON, as DDL answers may be).
    pub(crate) fn sql(
        &self,
        text: &str,
        operation: &'static str,
        grant: &Grant,
    ) -> Result<Value, Error> {
        let body = serde_json::json!({
            "sqlText": text,
            "biscuits": grant.biscuit.as_ref().map(|b| vec![b.expose()]).unwrap_or_default(),
            "validate": "false",
        })
        .to_string();
        let url = format!("{}/v1/sql", self.api_url);
        let mut token = self.token()?;
        let mut renewed = false;
        loop {
            let request = Request::post(url.as_str())
                .bearer(&token)
                .json(body.clone());
            let response = self.http.send_raw(&request)?;
            if response.status() == 401 && self.auto_reconnect && !renewed {
                tracing::info!("Space and Time refused the access token; authenticating again");
                token = self.renew(&token)?;
                renewed = true;
                continue;
            }
            return self.answer(&request, &response, operation, grant);
        }
    }

    fn answer(
        &self,
        request: &Request,
        response: &Response,
        operation: &'static str,
        grant: &Grant,
    ) -> Result<Value, Error> {
        let detail = || excerpt(response.body());
        match response.status() {
            200..=299 => Ok(serde_json::from_slice(response.body()).unwrap_or(Value::Null)),
            401 => Err(Error::Token(detail())),
            403 => Err(Error::Forbidden {
                operation,
                resource: self.table.resource(),
                which: grant.which,
                detail: if grant.biscuit.is_some() {
                    detail()
                } else {
                    format!("{} (no {} biscuit is configured)", detail(), grant.which)
                },
            }),
            404 => Err(Error::NoTable(self.table.sql())),
            status @ (400..=499) if !matches!(status, 408 | 429) => Err(Error::Refused {
                status,
                detail: detail(),
            }),
            _ => Err(Error::Http(status_error(
                request.method(),
                request.url(),
                response,
            ))),
        }
    }
}

/// The `UPDATED` count of a DML answer (`[{"UPDATED": n}]`).
pub(crate) fn updated(answer: &Value) -> Result<u64, Error> {
    answer
        .get(0)
        .and_then(|row| row.get("UPDATED").or_else(|| row.get("updated")))
        .and_then(number)
        .ok_or_else(|| {
            Error::Unexpected(format!(
                "a DML statement answered {}, expected [{{\"UPDATED\": n}}]",
                excerpt(answer.to_string().as_bytes())
            ))
        })
}

/// The rows of a query answer (an array of objects).
pub(crate) fn rows(answer: &Value) -> Result<&Vec<Value>, Error> {
    answer.as_array().ok_or_else(|| {
        Error::Unexpected(format!(
            "a query answered {}, expected an array of rows",
            excerpt(answer.to_string().as_bytes())
        ))
    })
}

/// A column of a row, by its upper-case name (or lower-case, to be lenient).
pub(crate) fn column<'r>(row: &'r Value, name: &str) -> Option<&'r Value> {
    row.get(name)
        .or_else(|| row.get(name.to_ascii_lowercase().as_str()))
}

/// A count as a JSON number or a numeric string.
pub(crate) fn number(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_f64().filter(|x| *x >= 0.0).map(|x| x as u64))
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dml_answers() {
        assert_eq!(updated(&serde_json::json!([{"UPDATED": 3}])).ok(), Some(3));
        assert_eq!(
            updated(&serde_json::json!([{"UPDATED": "0"}])).ok(),
            Some(0)
        );
        assert!(updated(&serde_json::json!([])).is_err());
        assert!(updated(&Value::Null).is_err());
        assert_eq!(number(&serde_json::json!(7.0)), Some(7));
    }
}
