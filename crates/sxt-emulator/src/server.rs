//! The two HTTP servers: the Gateway (`POST /auth/apikey`) and the network API
//! (`POST /v1/sql`, `GET /v1/auth/validtoken`), each on its own loopback port, served by a few
//! worker threads so concurrent clients and injected delays do not serialise everything.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::sql::{Db, SqlError};

/// Worker threads per server.
const WORKERS: usize = 8;

/// A scripted fault for the next `/v1/sql` requests.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// Answer this status (with `Retry-After: 0` for 429/503) without running the statement.
    Status(u16),
    /// Wait this long, then handle the request normally.
    Delay(Duration),
}

/// Everything the servers share.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) api_keys: Mutex<Vec<String>>,
    pub(crate) token_ttl: Mutex<Duration>,
    /// Access token → expiry in milliseconds since the epoch.
    pub(crate) tokens: Mutex<HashMap<String, u64>>,
    pub(crate) db: Mutex<Db>,
    pub(crate) faults: Mutex<VecDeque<Fault>>,
    pub(crate) auth_calls: AtomicU64,
    pub(crate) sql_calls: AtomicU64,
    pub(crate) token_refusals: AtomicU64,
    pub(crate) statements: Mutex<Vec<String>>,
    pub(crate) stopping: AtomicBool,
}

/// Locks a mutex whatever a panicking holder left (the emulator's state stays usable).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A running server: its address and worker threads.
pub(crate) struct Running {
    pub(crate) url: String,
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("url", &self.url)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Running {
    pub(crate) fn start(
        state: &Arc<State>,
        handler: fn(&State, &mut Request) -> (u16, Value),
    ) -> Result<Self, String> {
        let server = Server::http("127.0.0.1:0").map_err(|e| e.to_string())?;
        let url = match server.server_addr().to_ip() {
            Some(addr) => format!("http://{addr}"),
            None => return Err("the server has no IP address".to_owned()),
        };
        let server = Arc::new(server);
        let workers = (0..WORKERS)
            .map(|_| {
                let server = Arc::clone(&server);
                let state = Arc::clone(state);
                std::thread::spawn(move || loop {
                    let Ok(mut request) = server.recv() else {
                        return;
                    };
                    if state.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let (status, body) = handler(&state, &mut request);
                    let mut response =
                        Response::from_string(body.to_string()).with_status_code(status);
                    let mut headers = vec![("content-type", "application/json")];
                    if matches!(status, 429 | 503) {
                        headers.push(("retry-after", "0"));
                    }
                    for (name, value) in headers {
                        if let Ok(header) = Header::from_bytes(name, value) {
                            response = response.with_header(header);
                        }
                    }
                    let _ = request.respond(response);
                })
            })
            .collect();
        Ok(Self {
            url,
            server,
            workers,
        })
    }

    pub(crate) fn stop(&mut self) {
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn request_header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn error(status: u16, title: &str, detail: impl Into<String>) -> (u16, Value) {
    (
        status,
        json!({ "status": status, "title": title, "detail": detail.into() }),
    )
}

/// The Gateway: `POST /auth/apikey`.
pub(crate) fn gateway(state: &State, request: &mut Request) -> (u16, Value) {
    if request.method() != &Method::Post || request.url() != "/auth/apikey" {
        return error(404, "Not Found", format!("no route {}", request.url()));
    }
    state.auth_calls.fetch_add(1, Ordering::SeqCst);
    let key = request_header(request, "apikey").unwrap_or("");
    if key.is_empty() || !lock(&state.api_keys).iter().any(|k| k == key) {
        return error(401, "Unauthorized", "invalid API key");
    }
    let token = format!(
        "eyJemulator.{}.{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let ttl = *lock(&state.token_ttl);
    let expires = now_ms() + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 2);
    lock(&state.tokens).insert(token.clone(), expires);
    (
        200,
        json!({
            "accessToken": token,
            "accessTokenExpires": expires,
            "refreshToken": "",
            "refreshTokenExpires": 0,
        }),
    )
}

/// The network API: `POST /v1/sql` and `GET /v1/auth/validtoken`.
pub(crate) fn network(state: &State, request: &mut Request) -> (u16, Value) {
    let route = (request.method().clone(), request.url().to_owned());
    let token_ok = bearer_ok(state, request);
    match (route.0, route.1.as_str()) {
        (Method::Get, "/v1/auth/validtoken") => match token_ok {
            Ok(()) => (200, json!({ "userId": "emulator", "restricted": false })),
            Err(why) => error(401, "Unauthorized", why),
        },
        (Method::Post, "/v1/sql") => {
            state.sql_calls.fetch_add(1, Ordering::SeqCst);
            if let Err(why) = token_ok {
                state.token_refusals.fetch_add(1, Ordering::SeqCst);
                return error(401, "Unauthorized", why);
            }
            let fault = lock(&state.faults).pop_front();
            match fault {
                Some(Fault::Status(status)) => {
                    return error(status, "Injected fault", "the emulator was told to fail");
                }
                Some(Fault::Delay(wait)) => std::thread::sleep(wait),
                None => {}
            }
            sql(state, request)
        }
        (_, url) => error(404, "Not Found", format!("no route {url}")),
    }
}

fn bearer_ok(state: &State, request: &Request) -> Result<(), String> {
    let token = request_header(request, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("JWT authorization failed: no bearer token")?;
    match lock(&state.tokens).get(token.trim()) {
        Some(expires) if *expires > now_ms() => Ok(()),
        Some(_) => Err("JWT authorization failed: the token has expired".to_owned()),
        None => Err("JWT authorization failed: unknown token".to_owned()),
    }
}

fn sql(state: &State, request: &mut Request) -> (u16, Value) {
    let mut body = Vec::new();
    if let Err(err) = request.as_reader().read_to_end(&mut body) {
        return error(400, "Bad Request", format!("cannot read the body: {err}"));
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => return error(400, "Bad Request", format!("the body is not JSON: {err}")),
    };
    let Some(text) = parsed.get("sqlText").and_then(Value::as_str) else {
        return error(400, "Bad Request", "sqlText is required");
    };
    let mut biscuits: Vec<String> = parsed
        .get("biscuits")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(legacy) = request_header(request, "biscuit") {
        biscuits.push(legacy.to_owned());
    }
    lock(&state.statements).push(text.to_owned());
    match lock(&state.db).run(text, &biscuits) {
        Ok(answer) => (200, answer),
        Err(SqlError { status, message }) => {
            let title = match status {
                403 => "Forbidden",
                404 => "Not Found",
                _ => "Bad Request",
            };
            error(status, title, message)
        }
    }
}
