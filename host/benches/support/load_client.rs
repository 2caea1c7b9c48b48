//! The benchmarks' load client: keep-alive HTTP/1.1 `POST`s, each sent in one write.
//!
//! Why not ureq, which the benchmark used before: it sends a request's head and body in two
//! writes and probes the socket before reusing it, which costs the server an extra wake-up per
//! request and the client about 150 µs a request on a 2-core machine. That is a figure of the
//! client, added to every server's latency alike, which hides how far apart the servers are. A
//! load generator should cost as little as it can (wrk's approach), so this one builds each
//! request in one buffer, writes it once, and reads the answer with httparse (hyper's parser).

use std::io::{Read, Write};
use std::net::TcpStream;

/// One keep-alive connection posting JSON to (or getting) one URL.
#[derive(Debug)]
pub(crate) struct Poster {
    stream: TcpStream,
    /// The `POST` head up to the `content-length` value.
    head: String,
    /// The whole `GET` request.
    get: String,
    out: Vec<u8>,
    answer: Vec<u8>,
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
            answer: Vec::new(),
        }
    }

    /// Posts `body`; answers the status once the whole answer is read (so the connection is
    /// ready for the next request).
    pub(crate) fn post(&mut self, body: &[u8]) -> u16 {
        self.out.clear();
        self.out.extend_from_slice(self.head.as_bytes());
        self.out
            .extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        self.out.extend_from_slice(body);
        self.stream
            .write_all(&self.out)
            .expect("sending the request");
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
        self.answer.clear();
        let mut chunk = [0_u8; 16 * 1024];
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = response
                .parse(&self.answer)
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
                while self.answer.len() < total {
                    self.fill(&mut chunk);
                }
                assert_eq!(
                    self.answer.len(),
                    total,
                    "more than one answer to one request"
                );
                return status;
            }
            self.fill(&mut chunk);
        }
    }

    fn fill(&mut self, chunk: &mut [u8]) {
        let n = self.stream.read(chunk).expect("reading the answer");
        assert!(n > 0, "the server closed the connection");
        self.answer.extend_from_slice(&chunk[..n]);
    }
}
