//! The benchmarks' load client: keep-alive HTTP/1.1 `POST`s, each sent in one write.
//!
//! Why not ureq, which the benchmark used before: it sends a request's head and body in two
//! writes and probes the socket before reusing it, which costs the server an extra wake-up per
//! request and the client about 150 µs a request on a 2-core machine. That is a figure of the
//! client, added to every server's latency alike, which hides how far apart the servers are. A
//! load generator should cost as little as it can (wrk's approach), so this one sends each
//! request's head and body with one `writev` (the body is not copied into a request buffer), and
//! reads the answer straight into one buffer that lives as long as the connection, as much as
//! the socket holds per `read`, parsing the head with httparse (hyper's parser). The version
//! before copied each body into a request buffer and read answers 16 KB at a time into a second
//! one; with cat1 (270 KB each way) the one-client ratio to the Python stand-in went from 17.9×
//! to 20.3× against the same server build, the p50 from 417–459 µs to 382–406 µs
//! (docs/benchmarks.md). `cargo xtask bench api` prints what the client costs per request in its
//! `client CPU` column.

use std::io::{IoSlice, Read, Write};
use std::net::TcpStream;

/// The answer buffer's first size: most answers (a vCon of up to this size) fit without growing.
const ANSWER_BUFFER: usize = 512 * 1024;

/// One keep-alive connection posting JSON to (or getting) one URL.
#[derive(Debug)]
pub(crate) struct Poster {
    stream: TcpStream,
    /// The `POST` head up to the `content-length` value.
    head: String,
    /// The whole `GET` request.
    get: String,
    /// This request's head, `content-length` included.
    out: Vec<u8>,
    /// Where answers are read to; `filled` bytes of it hold the current one. Zeroed once, not per
    /// answer.
    answer: Vec<u8>,
    filled: usize,
}

impl Poster {
    /// Connects to `url` (`http://HOST:PORT/PATH?QUERY`).
    pub(crate) fn connect(url: &str) -> Self {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let stream = TcpStream::connect(authority)
            .unwrap_or_else(|err| panic!("connecting to {authority}: {err}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let path = if path.is_empty() { "/" } else { path };
        Self {
            stream,
            head: format!(
                "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
                 content-length: "
            ),
            get: format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\n\r\n"),
            out: Vec::new(),
            answer: vec![0; ANSWER_BUFFER],
            filled: 0,
        }
    }

    /// Posts `body`; answers the status once the whole answer is read (so the connection is
    /// ready for the next request).
    pub(crate) fn post(&mut self, body: &[u8]) -> u16 {
        self.out.clear();
        self.out.extend_from_slice(self.head.as_bytes());
        self.out
            .extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        let (mut head, mut body) = (&self.out[..], body);
        while !head.is_empty() || !body.is_empty() {
            let written = self
                .stream
                .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
                .expect("sending the request");
            assert!(written > 0, "the server closed the connection");
            let from_head = written.min(head.len());
            head = &head[from_head..];
            body = &body[written - from_head..];
        }
        self.read_answer()
    }

    /// Gets the URL; answers the status once the whole answer is read.
    pub(crate) fn get(&mut self) -> u16 {
        self.stream
            .write_all(self.get.as_bytes())
            .expect("sending the request");
        self.read_answer()
    }

    fn read_answer(&mut self) -> u16 {
        self.filled = 0;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = response
                .parse(&self.answer[..self.filled])
                .expect("the server answered something other than HTTP/1.1")
            {
                let status = response.code.expect("a status code");
                let body_len: usize = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .expect("an answer with content-length");
                let total = head_len + body_len;
                if self.answer.len() < total {
                    self.answer.resize(total, 0);
                }
                while self.filled < total {
                    self.fill();
                }
                assert_eq!(self.filled, total, "more than one answer to one request");
                return status;
            }
            if self.filled == self.answer.len() {
                self.answer.resize(self.answer.len() * 2, 0);
            }
            self.fill();
        }
    }

    /// Reads what the socket holds into the free part of the answer buffer.
    fn fill(&mut self) {
        let n = self
            .stream
            .read(&mut self.answer[self.filled..])
            .expect("reading the answer");
        assert!(n > 0, "the server closed the connection");
        self.filled += n;
    }
}
