//! How failures reach the host: throttling, server errors, time-outs and unreachable stores are
//! `UNAVAILABLE` (the host retries), refused credentials `UNAUTHORIZED`, a refused request
//! `INVALID_INPUT`, a missing bucket `NOT_FOUND` (never "not stored"). The failing services are
//! small HTTP stubs on loopback that answer every request the same way; the missing bucket is
//! on the real S3 server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugin_loader::{ErrorKind, StorageInstance};
use serde_json::json;

use crate::fixtures::{fake_docs, open};
use crate::s3server;

/// An HTTP server on loopback that answers every request with `status` and `body` (or never
/// answers, with `status` 0), counting requests. Stops when dropped.
struct Stub {
    endpoint: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Stub {
    fn start(status: u16, body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (Arc::clone(&requests), Arc::clone(&stop));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut held = Vec::new();
            while !halt.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        if status == 0 {
                            held.push(stream); // never answer
                        } else {
                            answer(stream, status, body);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            endpoint,
            requests,
            stop,
        }
    }

    fn storage(&self, extra: serde_json::Value) -> StorageInstance {
        let mut options = json!({
            "aws_bucket": "stubbed",
            "endpoint_url": self.endpoint,
            "aws_access_key_id": "k",
            "aws_secret_access_key": "s",
            "max_retries": 2,
            "retry_timeout_ms": 5000,
            "timeout_ms": 2000,
        });
        for (key, value) in extra.as_object().unwrap() {
            options[key] = value.clone();
        }
        open(&options)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one request (headers and a `Content-Length` body) and answers it, closing the
/// connection so each request is a new one and is counted.
fn answer(mut stream: TcpStream, status: u16, body: &str) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = Vec::new();
    let mut buf = [0_u8; 65536];
    loop {
        let Ok(n) = stream.read(&mut buf) else {
            return;
        };
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Stub\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn save_error(storage: &StorageInstance) -> plugin_loader::CallError {
    let doc = &fake_docs(1)[0];
    storage.save(&doc.record()).unwrap_err()
}

#[test]
fn server_errors_and_throttling_are_unavailable_after_bounded_retries() {
    for (status, body) in [
        (503, "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"),
        (500, "<Error><Code>InternalError</Code></Error>"),
        (429, "<Error><Code>TooManyRequests</Code></Error>"),
    ] {
        let stub = Stub::start(status, body);
        let storage = stub.storage(json!({}));
        let err = save_error(&storage);
        assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{status}: {err}");
        assert!(err.message.contains(&status.to_string()), "{err}");
        // One try and `max_retries` retries, then the host's retry policy takes over.
        assert_eq!(stub.requests.load(Ordering::Relaxed), 3, "{status}");
        // A read of an unavailable store is an error, never "not stored".
        let err = storage.get(&crate::fixtures::fresh_uuid()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{status}: {err}");
    }
}

#[test]
fn refused_credentials_are_unauthorized() {
    let stub = Stub::start(
        403,
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
    );
    let storage = stub.storage(json!({}));
    let err = save_error(&storage);
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
    assert!(err.message.contains("credentials"), "{err}");
    assert_eq!(stub.requests.load(Ordering::Relaxed), 1, "not retried");
    let err = storage.exists(&crate::fixtures::fresh_uuid()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UNAUTHORIZED, "{err}");
}

#[test]
fn a_refused_request_is_invalid_input() {
    let stub = Stub::start(400, "<Error><Code>InvalidArgument</Code></Error>");
    let err = save_error(&stub.storage(json!({})));
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT, "{err}");
    assert_eq!(stub.requests.load(Ordering::Relaxed), 1, "not retried");
}

#[test]
fn a_silent_server_times_out_as_unavailable() {
    let stub = Stub::start(0, "");
    let storage = stub.storage(json!({ "timeout_ms": 300, "max_retries": 1 }));
    let started = Instant::now();
    let err = save_error(&storage);
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_unreachable_endpoint_is_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = open(&json!({
        "aws_bucket": "nowhere",
        "endpoint_url": format!("http://127.0.0.1:{port}"),
        "aws_access_key_id": "k",
        "aws_secret_access_key": "s",
        "max_retries": 1,
        "connect_timeout_ms": 500,
    }));
    let err = save_error(&storage);
    assert_eq!(err.kind, ErrorKind::UNAVAILABLE, "{err}");
    assert_eq!(storage.status().unwrap_err().kind, ErrorKind::UNAVAILABLE);
}

#[test]
fn a_missing_bucket_is_an_error_not_an_absent_vcon() {
    let Some(server) = s3server::server() else {
        return;
    };
    if server.kind() == "s3s-fs" {
        // s3s-fs creates a bucket's directory on the first write instead of refusing it.
        return;
    }
    let storage = open(&server.options("vcon-no-such-bucket", ""));
    let err = save_error(&storage);
    assert_eq!(err.kind, ErrorKind::NOT_FOUND, "{err}");
    assert!(err.message.contains("create it"), "{err}");
    let err = storage.get(&crate::fixtures::fresh_uuid()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NOT_FOUND, "{err}");
}
