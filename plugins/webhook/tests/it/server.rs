//! A small real vCon API on loopback: stores POSTed vCons by uuid, answers GET and DELETE,
//! checks the bearer token, and misbehaves on request (500s, hanging, answering wrapped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiny_http::{Header, Method, Response, Server};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    store: Mutex<HashMap<String, Vec<u8>>>,
    seen: Mutex<Vec<Seen>>,
    /// Answer 500 to this many requests before behaving.
    fail_next: AtomicUsize,
    /// Hold every request this long before answering.
    hang: Mutex<Option<Duration>>,
    /// Answer GET with `{"success": true, "vcon": {...}}`.
    wrap: AtomicBool,
    /// The bearer token required, if any.
    token: Mutex<Option<String>>,
    stopping: AtomicBool,
}

/// The running API. Dropping it stops it.
pub(crate) struct Api {
    pub(crate) base_url: String,
    server: Arc<Server>,
    shared: Arc<Shared>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Api {
    /// Starts the API at `http://127.0.0.1:PORT/api/v1`.
    pub(crate) fn start() -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").unwrap());
        let base_url = format!("http://{}/api/v1", server.server_addr().to_ip().unwrap());
        let shared = Arc::new(Shared::default());
        let workers = (0..8)
            .map(|_| {
                let server = Arc::clone(&server);
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    while let Ok(request) = server.recv() {
                        if shared.stopping.load(Ordering::SeqCst) {
                            return;
                        }
                        handle(&shared, request);
                    }
                })
            })
            .collect();
        Self {
            base_url,
            server,
            shared,
            workers,
        }
    }

    /// Requires `Authorization: Bearer {token}`.
    pub(crate) fn require_token(&self, token: &str) {
        *self.shared.token.lock().unwrap() = Some(token.to_owned());
    }

    /// The next `count` requests answer 500.
    pub(crate) fn fail_next(&self, count: usize) {
        self.shared.fail_next.store(count, Ordering::SeqCst);
    }

    /// Every request waits `delay` before it is answered.
    pub(crate) fn hang(&self, delay: Option<Duration>) {
        *self.shared.hang.lock().unwrap() = delay;
    }

    /// GET answers the vcon-mcp shape `{"success": true, "vcon": {...}}`.
    pub(crate) fn wrap(&self, on: bool) {
        self.shared.wrap.store(on, Ordering::SeqCst);
    }

    /// What is stored under `uuid`.
    pub(crate) fn stored(&self, uuid: &str) -> Option<Vec<u8>> {
        self.shared.store.lock().unwrap().get(uuid).cloned()
    }

    /// Every request so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        *self.shared.hang.lock().unwrap() = None;
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
    }
}

fn handle(shared: &Shared, mut request: tiny_http::Request) {
    let seen = Seen {
        method: request.method().to_string(),
        path: request.url().to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|h| (h.field.to_string(), h.value.to_string()))
            .collect(),
    };
    shared.seen.lock().unwrap().push(seen.clone());
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    if let Some(delay) = *shared.hang.lock().unwrap() {
        std::thread::sleep(delay);
    }
    let (status, answer) = answer(shared, &seen, request.method(), &body);
    let json = Header::from_bytes("content-type", "application/json").unwrap();
    let _ = request.respond(
        Response::from_data(answer)
            .with_status_code(status)
            .with_header(json),
    );
}

fn answer(shared: &Shared, seen: &Seen, method: &Method, body: &[u8]) -> (u16, Vec<u8>) {
    if shared
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (500, br#"{"error":"internal error (scripted)"}"#.to_vec());
    }
    if let Some(token) = shared.token.lock().unwrap().as_deref() {
        if seen.header("authorization") != Some(&format!("Bearer {token}")) {
            return (401, br#"{"error":"invalid API key"}"#.to_vec());
        }
    }
    let Some(rest) = seen.path.strip_prefix("/api/v1/vcons") else {
        return (404, br#"{"error":"no such route"}"#.to_vec());
    };
    let mut store = shared.store.lock().unwrap();
    match (method, rest) {
        (Method::Post, "") => {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
                return (400, br#"{"error":"body is not JSON"}"#.to_vec());
            };
            let Some(uuid) = value["uuid"].as_str() else {
                return (422, br#"{"error":"vCon has no uuid"}"#.to_vec());
            };
            store.insert(uuid.to_owned(), body.to_vec());
            (
                201,
                format!(r#"{{"success":true,"uuid":"{uuid}"}}"#).into_bytes(),
            )
        }
        (Method::Get, path) => match store.get(path.trim_start_matches('/')) {
            Some(doc) if shared.wrap.load(Ordering::SeqCst) => {
                let doc: serde_json::Value = serde_json::from_slice(doc).unwrap();
                let wrapped = serde_json::json!({"success": true, "vcon": doc});
                (200, wrapped.to_string().into_bytes())
            }
            Some(doc) => (200, doc.clone()),
            None => (404, br#"{"error":"vCon not found"}"#.to_vec()),
        },
        (Method::Delete, path) => match store.remove(path.trim_start_matches('/')) {
            Some(_) => (204, Vec::new()),
            None => (404, br#"{"error":"vCon not found"}"#.to_vec()),
        },
        _ => (405, br#"{"error":"method not allowed"}"#.to_vec()),
    }
}
