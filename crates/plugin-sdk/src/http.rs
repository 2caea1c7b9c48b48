//! A blocking HTTP client for plugins that store into a web API: time-outs, retries with
//! back-off, and HTTP statuses mapped to the error kinds the host's retry policy acts on.
//!
//! Plugin calls already run on the host's blocking pool, so a synchronous client is the natural
//! fit: no runtime of the plugin's own is needed (`ureq` underneath, with rustls).
//!
//! What [`HttpClient::send`] does with one [`Request`]:
//!
//! - each attempt is bounded by [`HttpOptions::timeout`] (the whole exchange, body included)
//!   and [`HttpOptions::connect_timeout`];
//! - connection failures, time-outs, `408`, `429` and `5xx` answers are retried up to
//!   [`HttpOptions::retries`] times, with exponential back-off and jitter between
//!   [`HttpOptions::initial_backoff`] and [`HttpOptions::max_backoff`], honouring a
//!   `Retry-After` header (seconds or an HTTP date). A `Retry-After` longer than `max_backoff`
//!   stops the retries at once: the error carries the hint and the host retries later;
//! - other `4xx` answers are never retried: the same request would be refused again;
//! - the final failure becomes a [`StorageError`] of the right kind (see [`status_error`]):
//!   connection/time-out/`408`/`429`/`5xx` → `Unavailable` (with `retry_after` when given),
//!   `401`/`403` → `Unauthorized`, `404`/`410` → `NotFound` (callers turn it into `None` or
//!   `false`), `409`/`412` → `Conflict`, other `4xx` → `InvalidInput` naming the status and the
//!   start of the answer's body.
//!
//! Every request is retried the same way, POSTs included: a plugin's writes are upserts, so a
//! request that reached the server before the connection dropped is safe to repeat. Use
//! [`HttpClient::send_raw`] to see every final status yourself (e.g. to re-authenticate on a
//! `401` once).
//!
//! Secrets never reach a log line or an error message: the bearer token and any header added
//! with [`Request::secret_header`] are kept in [`Secret`]s, `Debug` redacts every header whose
//! name suggests a credential (`authorization`, `*key*`, `*token*`, `*secret*`, `cookie`...),
//! and URLs are logged without their query string.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ureq::http;

use crate::{ErrorKind, Secret, StorageError};

/// How long an answer's body excerpt in an error message may be, in characters.
const EXCERPT_CHARS: usize = 200;

/// The settings of an [`HttpClient`]. The defaults suit a web API on the internet; a plugin
/// fills them from its own options (`timeout`, `retries`, `headers`, `api_key`...).
#[derive(Clone)]
pub struct HttpOptions {
    /// The longest one attempt may take, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// The longest connecting (DNS, TCP, TLS) may take, within `timeout`.
    pub connect_timeout: Duration,
    /// How many times a failed attempt is retried (so at most `retries + 1` attempts).
    pub retries: u32,
    /// The back-off before the first retry; it doubles for each further one.
    pub initial_backoff: Duration,
    /// The longest back-off between two attempts, and the longest `Retry-After` waited for.
    pub max_backoff: Duration,
    /// Headers sent with every request (e.g. an `X-Api-Key` the operator configured). Values of
    /// headers whose names look like credentials are redacted from `Debug`.
    pub headers: Vec<(String, String)>,
    /// A bearer token sent as `Authorization: Bearer …` with every request that does not set
    /// `Authorization` itself.
    pub bearer: Option<Secret>,
    /// The largest answer body read, in bytes: a guard against a misbehaving server.
    pub max_response_bytes: u64,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            headers: Vec::new(),
            bearer: None,
            max_response_bytes: 256 * 1024 * 1024,
            user_agent: format!("vcon-host-plugin/{}", crate::SDK_VERSION),
        }
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("bearer", &self.bearer)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// Whether a header's value must never be shown: its name suggests a credential.
pub fn is_sensitive_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "apikey"
    ) || [
        "key",
        "token",
        "secret",
        "auth",
        "password",
        "signature",
        "session",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Headers printed with the values of sensitive ones replaced by `***`.
struct RedactedHeaders<'a>(&'a [(String, String)]);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if is_sensitive_header(name) {
                    "***"
                } else {
                    value.as_str()
                };
                (name, shown)
            }))
            .finish()
    }
}

/// An HTTP method: the ones a storage API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`: read.
    Get,
    /// `HEAD`: read the status only.
    Head,
    /// `POST`: create, or call an RPC-style endpoint.
    Post,
    /// `PUT`: replace.
    Put,
    /// `PATCH`: change part of.
    Patch,
    /// `DELETE`: remove.
    Delete,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    fn to_http(self) -> http::Method {
        match self {
            Self::Get => http::Method::GET,
            Self::Head => http::Method::HEAD,
            Self::Post => http::Method::POST,
            Self::Put => http::Method::PUT,
            Self::Patch => http::Method::PATCH,
            Self::Delete => http::Method::DELETE,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header value that is either shown in `Debug` or kept secret.
#[derive(Clone)]
enum HeaderValue {
    Plain(String),
    Secret(Secret),
}

impl HeaderValue {
    fn expose(&self) -> &str {
        match self {
            Self::Plain(value) => value,
            Self::Secret(secret) => secret.expose(),
        }
    }
}

/// One request to send with [`HttpClient::send`]: built once, sent (and re-sent on a retry) as
/// often as needed.
#[derive(Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, HeaderValue)>,
    body: Option<Vec<u8>>,
}

impl Request {
    /// A request with no headers of its own and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `HEAD` of `url`.
    pub fn head(url: impl Into<String>) -> Self {
        Self::new(Method::Head, url)
    }

    /// A `POST` to `url` (add the body with [`Request::json`] or [`Request::body`]).
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// A `PUT` to `url`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }

    /// A `DELETE` of `url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// Adds a header. A header of the same name from [`HttpOptions::headers`] is replaced.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into(), HeaderValue::Plain(value.into())));
        self
    }

    /// Adds a header whose value is a credential (an API key): it is never printed.
    pub fn secret_header(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.headers.push((name.into(), HeaderValue::Secret(value)));
        self
    }

    /// Sends `Authorization: Bearer {token}` instead of the client's own bearer token.
    pub fn bearer(self, token: &Secret) -> Self {
        let value = Secret::from(format!("Bearer {}", token.expose()));
        self.secret_header("authorization", value)
    }

    /// Sets a JSON body (and `Content-Type: application/json`).
    pub fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.body("application/json", body)
    }

    /// Sets a body of the given content type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.headers.push((
            "content-type".to_owned(),
            HeaderValue::Plain(content_type.to_owned()),
        ));
        self.body = Some(body.into());
        self
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = match value {
                    HeaderValue::Plain(v) if !is_sensitive_header(name) => v.as_str(),
                    _ => "***",
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &loggable_url(&self.url))
            .field("headers", &headers)
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// An answer: its status, headers and whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An answer built by hand, for a plugin's own unit tests.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is `2xx`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, taken.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as text (invalid UTF-8 replaced), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; an answer that does not parse is an `Internal` error (the
    /// service did not answer what it documents).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, StorageError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            StorageError::internal(format!(
                "unexpected answer (status {}): {err}; the body starts {:?}",
                self.status,
                excerpt(&self.body)
            ))
        })
    }

    /// The `Retry-After` hint, in seconds or as an HTTP date.
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?)
    }
}

/// A blocking HTTP client with one connection pool, shared by all of a storage's threads.
pub struct HttpClient {
    agent: ureq::Agent,
    options: HttpOptions,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Why an attempt failed before any answer arrived.
#[derive(Debug)]
struct TransportError {
    kind: ErrorKind,
    retryable: bool,
    message: String,
}

impl HttpClient {
    /// A client with these options. Header names and values are checked here, so a bad
    /// `headers:` option is refused when the storage opens rather than at the first vCon.
    pub fn new(options: HttpOptions) -> Result<Self, StorageError> {
        for (name, value) in &options.headers {
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                StorageError::invalid_input(format!("invalid HTTP header name {name:?}"))
            })?;
            http::HeaderValue::from_str(value).map_err(|_| {
                let shown = if is_sensitive_header(name) {
                    "(redacted)".to_owned()
                } else {
                    format!("{value:?}")
                };
                StorageError::invalid_input(format!(
                    "invalid value for HTTP header {name}: {shown} (control characters or \
                     non-ASCII bytes are not allowed)"
                ))
            })?;
        }
        if let Some(bearer) = &options.bearer {
            http::HeaderValue::from_str(&format!("Bearer {}", bearer.expose())).map_err(|_| {
                StorageError::invalid_input(
                    "the bearer token contains characters not allowed in an HTTP header",
                )
            })?;
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .timeout_connect(Some(options.connect_timeout))
            .user_agent(options.user_agent.as_str())
            // A redirect would silently re-send credentials elsewhere; an API storage's URL is
            // configured exactly, so a redirect is reported (as an unexpected status) instead.
            .max_redirects(0)
            .build();
        Ok(Self {
            agent: ureq::Agent::new_with_config(config),
            options,
        })
    }

    /// The options the client was built with.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// Sends `request`, retrying transient failures; a `2xx` answer is `Ok`, anything else the
    /// error [`status_error`] maps it to.
    pub fn send(&self, request: &Request) -> Result<Response, StorageError> {
        let response = self.send_raw(request)?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(status_error(request.method, &request.url, &response))
        }
    }

    /// Sends `request`, retrying connection failures, time-outs, `408`, `429` and `5xx`, and
    /// answers the final response whatever its status. `Err` only when no answer arrived at all
    /// (`Unavailable` after the retries) or the request itself is malformed (`InvalidInput`).
    pub fn send_raw(&self, request: &Request) -> Result<Response, StorageError> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let outcome = self.attempt(request);
            let retries_left = attempt < self.options.retries;
            let wait = match outcome {
                Ok(response) if !is_retryable_status(response.status) => return Ok(response),
                Ok(response) => {
                    let hint = response.retry_after();
                    if !retries_left || hint.is_some_and(|h| h > self.options.max_backoff) {
                        return Ok(response);
                    }
                    let backoff = self.backoff(attempt);
                    tracing::warn!(
                        method = request.method.as_str(),
                        url = %loggable_url(&request.url),
                        status = response.status,
                        attempt = attempt + 1,
                        "HTTP request answered a retryable status; retrying in {:?}",
                        hint.map_or(backoff, |h| h.max(backoff))
                    );
                    hint.map_or(backoff, |h| h.max(backoff))
                }
                Err(err) if !err.retryable || !retries_left => {
                    let attempts = attempt + 1;
                    let message = if attempts > 1 {
                        format!(
                            "{} {}: {} ({attempts} attempts in {:.1} s)",
                            request.method,
                            loggable_url(&request.url),
                            err.message,
                            started.elapsed().as_secs_f64()
                        )
                    } else {
                        format!(
                            "{} {}: {}",
                            request.method,
                            loggable_url(&request.url),
                            err.message
                        )
                    };
                    return Err(StorageError::new(err.kind, message));
                }
                Err(err) => {
                    let backoff = self.backoff(attempt);
                    tracing::warn!(
                        method = request.method.as_str(),
                        url = %loggable_url(&request.url),
                        attempt = attempt + 1,
                        "HTTP request failed: {}; retrying in {backoff:?}",
                        err.message
                    );
                    backoff
                }
            };
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// One attempt: the answer, or why there was none.
    fn attempt(&self, request: &Request) -> Result<Response, TransportError> {
        let mut builder = http::Request::builder()
            .method(request.method.to_http())
            .uri(request.url.as_str());
        for (name, value) in &self.options.headers {
            if !request.has_header(name) {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        if let Some(bearer) = &self.options.bearer {
            if !request.has_header("authorization") {
                builder = builder.header("authorization", format!("Bearer {}", bearer.expose()));
            }
        }
        if !request.has_header("accept") {
            builder = builder.header("accept", "application/json");
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.expose());
        }
        let result = match &request.body {
            Some(body) => builder
                .body(body.as_slice())
                .map_err(|err| invalid_request(&err))
                .and_then(|req| self.agent.run(req).map_err(transport_error)),
            None => builder
                .body(())
                .map_err(|err| invalid_request(&err))
                .and_then(|req| self.agent.run(req).map_err(transport_error)),
        };
        let mut response = result?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = if request.method == Method::Head {
            Vec::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(self.options.max_response_bytes)
                .read_to_vec()
                .map_err(|err| match err {
                    ureq::Error::BodyExceedsLimit(limit) => TransportError {
                        kind: ErrorKind::Internal,
                        retryable: false,
                        message: format!(
                            "the answer is larger than the {limit} bytes this client reads"
                        ),
                    },
                    other => transport_error(other),
                })?
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// The back-off before retry number `attempt + 1`: exponential, capped, with jitter
    /// (between half and all of it), so many clients do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .options
            .initial_backoff
            .saturating_mul(2_u32.saturating_pow(attempt.min(30)))
            .min(self.options.max_backoff);
        base.mul_f64(0.5 + 0.5 * random_fraction())
    }
}

/// A pseudo-random number in `[0, 1)`, from std's randomly keyed hasher: enough for jitter.
fn random_fraction() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = RandomState::new().hash_one(n);
    // The top 53 bits as a fraction.
    (hash >> 11) as f64 / (1_u64 << 53) as f64
}

/// Whether an answer with this status is worth retrying: the server may answer otherwise soon.
fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505)
}

fn invalid_request(err: &http::Error) -> TransportError {
    TransportError {
        kind: ErrorKind::InvalidInput,
        retryable: false,
        message: format!("cannot build the request: {err}"),
    }
}

/// Classifies a failure before any answer: network trouble is retryable and `Unavailable`;
/// a malformed URL or request is `InvalidInput`.
fn transport_error(err: ureq::Error) -> TransportError {
    let (kind, retryable, message) = match &err {
        ureq::Error::Timeout(which) => {
            (ErrorKind::Unavailable, true, format!("timed out ({which})"))
        }
        ureq::Error::Io(io) => (
            ErrorKind::Unavailable,
            true,
            format!("connection error: {io}"),
        ),
        ureq::Error::HostNotFound => (
            ErrorKind::Unavailable,
            true,
            "host not found (DNS)".to_owned(),
        ),
        ureq::Error::ConnectionFailed => {
            (ErrorKind::Unavailable, true, "connection failed".to_owned())
        }
        ureq::Error::Protocol(_) | ureq::Error::BodyStalled => (
            ErrorKind::Unavailable,
            true,
            format!("the server broke the HTTP exchange: {err}"),
        ),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => {
            (ErrorKind::Unavailable, true, format!("TLS error: {err}"))
        }
        ureq::Error::BadUri(uri) => (
            ErrorKind::InvalidInput,
            false,
            format!("invalid URL {uri:?}: it needs a scheme (https://) and a host"),
        ),
        ureq::Error::Http(_)
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::ConnectProxyFailed(_) => (ErrorKind::InvalidInput, false, format!("{err}")),
        _ => (ErrorKind::Unavailable, true, format!("{err}")),
    };
    TransportError {
        kind,
        retryable,
        message,
    }
}

/// The error for a final non-`2xx` answer to `method url`: the mapping every HTTP plugin shares.
///
/// | status | kind |
/// |---|---|
/// | 401, 403 | `Unauthorized` |
/// | 404, 410 | `NotFound` (callers usually turn it into `None`/`false`) |
/// | 409, 412 | `Conflict` |
/// | 408, 429, 5xx | `Unavailable`, with the `Retry-After` hint |
/// | other 4xx | `InvalidInput` |
/// | anything else (1xx, 3xx) | `Internal` |
///
/// The message names the method, the URL (without its query) and the status, and quotes the
/// start of the body: services explain a refusal there.
pub fn status_error(method: Method, url: &str, response: &Response) -> StorageError {
    let status = response.status;
    let kind = match status {
        401 | 403 => ErrorKind::Unauthorized,
        404 | 410 => ErrorKind::NotFound,
        409 | 412 => ErrorKind::Conflict,
        s if is_retryable_status(s) || (500..600).contains(&s) => ErrorKind::Unavailable,
        400..=499 => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    };
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let body = excerpt(&response.body);
    let mut message = format!("{method} {} answered {status} {reason}", loggable_url(url));
    if status == 413 {
        message.push_str(" (the request is too large for the server)");
    }
    if !body.is_empty() {
        message.push_str(": ");
        message.push_str(&body);
    }
    let error = StorageError::new(kind, message);
    match response.retry_after() {
        Some(after) if kind == ErrorKind::Unavailable => error.with_retry_after(after),
        _ => error,
    }
}

/// The start of a body, on one line, for an error message.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = one_line.chars();
    let mut out: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// A URL as it may be logged: without its query string and fragment (where API keys sometimes
/// travel) and without user info.
pub fn loggable_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    match url.find("://") {
        Some(scheme_end) => {
            let rest = &url[scheme_end + 3..];
            let host_end = rest.find('/').unwrap_or(rest.len());
            match rest[..host_end].rfind('@') {
                Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

/// `Retry-After` as seconds (`120`) or an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    /// A request as the test server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// What the test server does with the n-th request (0-based).
    enum Action {
        Reply(u16, Vec<(&'static str, String)>, String),
        Hang(Duration),
        Close,
    }

    /// A real HTTP/1.1 server on loopback, one thread, one request per connection.
    struct Server {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Server {
        fn start(script: impl Fn(usize, &Seen) -> Action + Send + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&seen);
            std::thread::spawn(move || {
                for (n, stream) in listener.incoming().enumerate() {
                    let Ok(mut stream) = stream else { return };
                    let Some(request) = read_request(&mut stream) else {
                        continue;
                    };
                    log.lock().unwrap().push(request.clone());
                    match script(n, &request) {
                        Action::Reply(status, headers, body) => {
                            let mut head = format!(
                                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                                body.len()
                            );
                            for (name, value) in headers {
                                head.push_str(&format!("{name}: {value}\r\n"));
                            }
                            head.push_str("\r\n");
                            let _ = stream.write_all(head.as_bytes());
                            let _ = stream.write_all(body.as_bytes());
                        }
                        Action::Hang(how_long) => {
                            // Hold the connection open without answering, off this thread.
                            std::thread::spawn(move || {
                                std::thread::sleep(how_long);
                                drop(stream);
                            });
                        }
                        Action::Close => drop(stream),
                    }
                }
            });
            Self { url, seen }
        }

        fn requests(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    fn read_request(stream: &mut TcpStream) -> Option<Seen> {
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let mut parts = line.split_whitespace();
        let method = parts.next()?.to_owned();
        let path = parts.next()?.to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap_or(0));
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
        Some(Seen {
            method,
            path,
            headers,
            body,
        })
    }

    fn fast(retries: u32) -> HttpOptions {
        HttpOptions {
            timeout: Duration::from_secs(5),
            retries,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            ..HttpOptions::default()
        }
    }

    fn reply(status: u16, body: &str) -> Action {
        Action::Reply(status, Vec::new(), body.to_owned())
    }

    #[test]
    fn success_sends_headers_bearer_and_body() {
        let server = Server::start(|_, _| reply(201, r#"{"ok":true}"#));
        let client = HttpClient::new(HttpOptions {
            headers: vec![("X-Tenant".into(), "acme".into())],
            bearer: Some(Secret::from("tok-123".to_owned())),
            ..fast(0)
        })
        .unwrap();
        let answer = client
            .send(&Request::post(format!("{}/vcons", server.url)).json(br#"{"a":1}"#.to_vec()))
            .unwrap();
        assert_eq!(answer.status(), 201);
        assert_eq!(
            answer.json::<serde_json::Value>().unwrap(),
            serde_json::json!({"ok": true})
        );
        let seen = &server.requests()[0];
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path, "/vcons");
        assert_eq!(seen.header("authorization"), Some("Bearer tok-123"));
        assert_eq!(seen.header("x-tenant"), Some("acme"));
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(seen.body, br#"{"a":1}"#);
    }

    #[test]
    fn a_request_header_overrides_the_client_s() {
        let server = Server::start(|_, _| reply(200, ""));
        let client = HttpClient::new(HttpOptions {
            headers: vec![("x-tenant".into(), "default".into())],
            bearer: Some(Secret::from("client".to_owned())),
            ..fast(0)
        })
        .unwrap();
        client
            .send(
                &Request::get(format!("{}/x", server.url))
                    .header("X-Tenant", "other")
                    .bearer(&Secret::from("request".to_owned())),
            )
            .unwrap();
        let seen = &server.requests()[0];
        assert_eq!(seen.header("authorization"), Some("Bearer request"));
        let tenants: Vec<_> = seen
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-tenant"))
            .collect();
        assert_eq!(tenants.len(), 1, "{tenants:?}");
        assert_eq!(tenants[0].1, "other");
    }

    #[test]
    fn five_hundreds_are_retried_until_success() {
        let server = Server::start(|n, _| {
            if n < 2 {
                reply(500, "boom")
            } else {
                reply(200, "fine")
            }
        });
        let client = HttpClient::new(fast(3)).unwrap();
        let answer = client
            .send(&Request::get(format!("{}/x", server.url)))
            .unwrap();
        assert_eq!(answer.text(), "fine");
        assert_eq!(server.requests().len(), 3);
    }

    #[test]
    fn persistent_503_is_unavailable_after_the_retries() {
        let server = Server::start(|_, _| reply(503, "down for maintenance"));
        let client = HttpClient::new(fast(2)).unwrap();
        let err = client
            .send(&Request::get(format!("{}/x", server.url)))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("503"), "{err}");
        assert!(err.message().contains("down for maintenance"), "{err}");
        assert_eq!(server.requests().len(), 3);
    }

    #[test]
    fn retry_after_is_honoured() {
        let server = Server::start(|n, _| {
            if n == 0 {
                Action::Reply(429, vec![("retry-after", "1".into())], "slow down".into())
            } else {
                reply(200, "ok")
            }
        });
        let client = HttpClient::new(HttpOptions {
            max_backoff: Duration::from_secs(2),
            ..fast(1)
        })
        .unwrap();
        let started = Instant::now();
        client
            .send(&Request::get(format!("{}/x", server.url)))
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn a_long_retry_after_is_handed_to_the_host() {
        let server = Server::start(|_, _| {
            Action::Reply(429, vec![("Retry-After", "120".into())], String::new())
        });
        let client = HttpClient::new(fast(3)).unwrap();
        let started = Instant::now();
        let err = client
            .send(&Request::get(format!("{}/x", server.url)))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn auth_failures_are_unauthorized_and_not_retried() {
        for status in [401, 403] {
            let server = Server::start(move |_, _| reply(status, "no"));
            let client = HttpClient::new(fast(3)).unwrap();
            let err = client
                .send(&Request::get(format!("{}/x", server.url)))
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthorized, "{status}");
            assert_eq!(server.requests().len(), 1);
        }
    }

    #[test]
    fn not_found_is_not_found_and_send_raw_answers_it() {
        let server = Server::start(|_, _| reply(404, "nothing here"));
        let client = HttpClient::new(fast(3)).unwrap();
        let err = client
            .send(&Request::get(format!("{}/x", server.url)))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let raw = client
            .send_raw(&Request::get(format!("{}/x", server.url)))
            .unwrap();
        assert_eq!(raw.status(), 404);
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn other_client_errors_are_invalid_input_with_an_excerpt() {
        let long = format!("field `uuid` is wrong {}", "x".repeat(1000));
        let server = Server::start(move |_, _| reply(422, &long));
        let client = HttpClient::new(fast(3)).unwrap();
        let err = client
            .send(&Request::post(format!("{}/vcons?key=abc", server.url)).json(b"{}".to_vec()))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("422"), "{err}");
        assert!(err.message().contains("field `uuid` is wrong"), "{err}");
        assert!(
            err.message().len() < 400,
            "excerpt not cut: {}",
            err.message().len()
        );
        assert!(!err.message().contains("key=abc"), "query leaked: {err}");
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn conflicts_are_conflicts() {
        let server = Server::start(|_, _| reply(409, "exists"));
        let client = HttpClient::new(fast(3)).unwrap();
        let err = client
            .send(&Request::get(format!("{}/x", server.url)))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn a_hanging_server_times_out_as_unavailable() {
        let server = Server::start(|_, _| Action::Hang(Duration::from_secs(3)));
        let client = HttpClient::new(HttpOptions {
            timeout: Duration::from_millis(300),
            ..fast(1)
        })
        .unwrap();
        let started = Instant::now();
        let err = client
            .send(&Request::get(format!("{}/x", server.url)))
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("timed out"), "{err}");
        assert!(err.message().contains("2 attempts"), "{err}");
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn a_dropped_connection_is_retried() {
        let server = Server::start(|n, _| {
            if n == 0 {
                Action::Close
            } else {
                reply(200, "ok")
            }
        });
        let client = HttpClient::new(fast(2)).unwrap();
        let answer = client
            .send(&Request::get(format!("{}/x", server.url)))
            .unwrap();
        assert_eq!(answer.text(), "ok");
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn a_refused_connection_is_unavailable() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let client = HttpClient::new(fast(2)).unwrap();
        let err = client
            .send(&Request::get(format!("http://127.0.0.1:{port}/x")))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.message().contains("3 attempts"), "{err}");
    }

    #[test]
    fn a_malformed_url_is_invalid_input() {
        let client = HttpClient::new(fast(2)).unwrap();
        let err = client.send(&Request::get("not a url")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }

    #[test]
    fn bad_header_options_are_refused_at_construction() {
        let err = HttpClient::new(HttpOptions {
            headers: vec![("bad header".into(), "v".into())],
            ..fast(0)
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = HttpClient::new(HttpOptions {
            headers: vec![("x-api-key".into(), "sec\nret".into())],
            ..fast(0)
        })
        .unwrap_err();
        assert!(!err.message().contains("sec"), "secret leaked: {err}");
    }

    #[test]
    fn a_body_over_the_limit_is_refused() {
        let server = Server::start(|_, _| reply(200, &"x".repeat(5000)));
        let client = HttpClient::new(HttpOptions {
            max_response_bytes: 1000,
            ..fast(2)
        })
        .unwrap();
        let err = client
            .send(&Request::get(format!("{}/x", server.url)))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn secrets_never_print() {
        let options = HttpOptions {
            headers: vec![
                ("X-Api-Key".into(), "hunter2".into()),
                ("X-Tenant".into(), "acme".into()),
            ],
            bearer: Some(Secret::from("tok-secret".to_owned())),
            ..HttpOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok-secret"),
            "{shown}"
        );
        assert!(shown.contains("acme"), "{shown}");
        let client = HttpClient::new(options).unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
        let request = Request::get("https://u:pw@example.invalid/x?apikey=zzz")
            .secret_header("apikey", Secret::from("k-1".to_owned()))
            .header("Authorization", "Basic abc")
            .bearer(&Secret::from("b-2".to_owned()));
        let shown = format!("{request:?}");
        for secret in ["k-1", "abc", "b-2", "zzz", "pw"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(100)).to_rfc2822();
        let parsed = parse_retry_after(&later).unwrap();
        assert!(parsed > Duration::from_secs(90) && parsed <= Duration::from_secs(100));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn status_mapping_table() {
        let kind = |status| {
            status_error(
                Method::Get,
                "http://h/x",
                &Response::new(status, vec![], vec![]),
            )
            .kind()
        };
        assert_eq!(kind(400), ErrorKind::InvalidInput);
        assert_eq!(kind(401), ErrorKind::Unauthorized);
        assert_eq!(kind(403), ErrorKind::Unauthorized);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(408), ErrorKind::Unavailable);
        assert_eq!(kind(409), ErrorKind::Conflict);
        assert_eq!(kind(410), ErrorKind::NotFound);
        assert_eq!(kind(413), ErrorKind::InvalidInput);
        assert_eq!(kind(429), ErrorKind::Unavailable);
        assert_eq!(kind(500), ErrorKind::Unavailable);
        assert_eq!(kind(501), ErrorKind::Unavailable);
        assert_eq!(kind(503), ErrorKind::Unavailable);
        assert_eq!(kind(302), ErrorKind::Internal);
        let too_large = status_error(
            Method::Post,
            "http://h/x",
            &Response::new(413, vec![], vec![]),
        );
        assert!(too_large.message().contains("too large"), "{too_large}");
    }

    #[test]
    fn urls_are_logged_without_credentials_or_query() {
        assert_eq!(loggable_url("https://h/a/b?k=v#f"), "https://h/a/b");
        assert_eq!(loggable_url("https://user:pw@h:8/a"), "https://h:8/a");
        assert_eq!(loggable_url("https://h/a@b"), "https://h/a@b");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let client = HttpClient::new(HttpOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..HttpOptions::default()
        })
        .unwrap();
        for _ in 0..50 {
            let first = client.backoff(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = client.backoff(2);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let capped = client.backoff(40);
            assert!(capped >= Duration::from_millis(500) && capped <= Duration::from_millis(1000));
        }
    }
}
