//! An S3-compatible server on loopback for the tests and the benchmark: moto's server, run by
//! `scripts/s3_server.py`, or one already running (`VCON_S3_ENDPOINT`, as `cargo xtask services`
//! starts it). `VCON_S3_SERVER=s3s-fs` runs the `s3s-fs` binary instead (`cargo install s3s-fs
//! --features binary`), a Rust server that checks signatures and serves requests in parallel,
//! for benchmarks where moto (one Python process) would be the bottleneck.
//!
//! One server per test process, started on first use on a free port. It is run with its standard
//! input on a pipe from this process and stops when that pipe closes, so it cannot outlive the
//! tests, even when they are killed. When the server cannot be had (moto missing and not
//! installable), the S3 tests print why, loudly, and skip; with `VCON_REQUIRE_SERVICES=1` (CI)
//! they fail instead.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

/// How the server is installed on a fresh machine (also what `cargo xtask services` runs).
pub const INSTALL_HINT: &str =
    "plugins/object-store/scripts/install-s3-server.sh (pip install --user 'moto[server]>=5,<6')";

/// A running S3-compatible server.
#[derive(Debug)]
pub struct S3Server {
    endpoint: String,
    /// Which server: `moto`, `s3s-fs` or `external`.
    kind: &'static str,
    /// Where `s3s-fs` keeps its buckets (one directory each).
    root: Option<tempfile::TempDir>,
    /// The server process, when this process started it; kept so its stdin pipe stays open.
    child: Option<Mutex<Child>>,
}

static SERVER: OnceLock<Result<S3Server, String>> = OnceLock::new();
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

/// The shared server, or `None` (after saying why) when it cannot be had and services are not
/// required.
pub fn server() -> Option<&'static S3Server> {
    match SERVER.get_or_init(S3Server::launch) {
        Ok(server) => Some(server),
        Err(why) if required() => panic!(
            "VCON_REQUIRE_SERVICES=1 but no S3-compatible server: {why}\ninstall it with {INSTALL_HINT}"
        ),
        Err(why) => {
            // Straight to the process's stderr, past the test harness's capture, once.
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPING the S3 tests: no S3-compatible server: {why}\n*** install it \
                     with {INSTALL_HINT}, or set VCON_S3_ENDPOINT\n"
                );
            }
            None
        }
    }
}

/// Whether missing services are a failure (CI) rather than a skip.
pub fn required() -> bool {
    std::env::var("VCON_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn scripts() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"))
}

/// Whether moto's server (and boto3, which it brings) can be imported.
pub fn moto_installed() -> bool {
    Command::new(python())
        .args(["-c", "import moto.server, boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl S3Server {
    fn launch() -> Result<Self, String> {
        if let Ok(endpoint) = std::env::var("VCON_S3_ENDPOINT") {
            if !endpoint.trim().is_empty() {
                return Ok(Self {
                    endpoint: endpoint.trim().trim_end_matches('/').to_owned(),
                    kind: "external",
                    root: None,
                    child: None,
                });
            }
        }
        if std::env::var("VCON_S3_SERVER").is_ok_and(|v| v == "s3s-fs") {
            return Self::launch_s3s_fs();
        }
        if !moto_installed() {
            if std::env::var("VCON_NO_INSTALL").is_ok_and(|v| v == "1") {
                return Err("moto's server is not installed (VCON_NO_INSTALL=1)".to_owned());
            }
            eprintln!("object-store tests: moto's server is missing, installing it...");
            let status = Command::new("bash")
                .arg(scripts().join("install-s3-server.sh"))
                .status()
                .map_err(|err| format!("cannot run the installer: {err}"))?;
            if !status.success() || !moto_installed() {
                return Err(format!("installing moto's server failed ({status})"));
            }
        }
        let mut child = Command::new(python())
            .arg(scripts().join("s3_server.py"))
            .args(["--until-stdin-closes", "--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", python()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| "no stdout from the server".to_owned())?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(endpoint) = line.strip_prefix("VCON_S3_ENDPOINT=") {
                    let _ = tx.send(endpoint.to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(endpoint) => Ok(Self {
                endpoint,
                kind: "moto",
                root: None,
                child: Some(Mutex::new(child)),
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                Err(format!(
                    "the server did not announce its endpoint within 60 s ({status:?})"
                ))
            }
        }
    }

    /// `s3s-fs` on a free port, with its buckets in a temporary directory. It is started by a
    /// shell that kills it when its standard input (a pipe from this process) closes.
    fn launch_s3s_fs() -> Result<Self, String> {
        let binary = std::env::var("VCON_S3S_FS").unwrap_or_else(|_| "s3s-fs".to_owned());
        let root = tempfile::tempdir().map_err(|err| err.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|err| err.to_string())?
            .port();
        let child = Command::new("sh")
            .args([
                "-c",
                "\"$0\" --host 127.0.0.1 --port \"$1\" --access-key test --secret-key test \"$2\" \
                 >/dev/null 2>&1 & pid=$!; cat >/dev/null; kill $pid",
            ])
            .arg(&binary)
            .arg(port.to_string())
            .arg(root.path())
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start {binary}: {err}"))?;
        let address = format!("127.0.0.1:{port}");
        for _ in 0..200 {
            if TcpStream::connect(&address).is_ok() {
                return Ok(Self {
                    endpoint: format!("http://{address}"),
                    kind: "s3s-fs",
                    root: Some(root),
                    child: Some(Mutex::new(child)),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{binary} did not listen on {address} within 10 s (is it installed?)"
        ))
    }

    /// Which server this is: `moto`, `s3s-fs` or `external`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `host:port` of the endpoint.
    fn address(&self) -> &str {
        self.endpoint
            .strip_prefix("http://")
            .unwrap_or(&self.endpoint)
    }

    /// Creates a bucket with a fresh name starting with `tag`, and answers its name.
    pub fn bucket(&self, tag: &str) -> String {
        let name = format!(
            "vcon-{tag}-{}-{}",
            std::process::id(),
            BUCKETS.fetch_add(1, Ordering::Relaxed)
        );
        match &self.root {
            // s3s-fs keeps a bucket as a directory (and checks signatures, which a bare
            // request has not got).
            Some(root) => std::fs::create_dir(root.path().join(&name)).unwrap(),
            None => {
                let status = self.request("PUT", &format!("/{name}"));
                assert_eq!(status, 200, "creating bucket {name} on {}", self.endpoint);
            }
        }
        name
    }

    /// Sends a bodiless request and answers the status. Moto routes by the Authorization header
    /// and does not check signatures.
    pub fn request(&self, method: &str, path: &str) -> u16 {
        let mut stream = TcpStream::connect(self.address()).expect("connecting to the S3 server");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("setting a time-out");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=test/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, \
             Signature=0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.address()
        )
        .expect("sending to the S3 server");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    /// The plugin's options for `bucket` on this server, in the Python module's names.
    pub fn options(&self, bucket: &str, s3_path: &str) -> serde_json::Value {
        serde_json::json!({
            "aws_bucket": bucket,
            "s3_path": s3_path,
            "endpoint_url": self.endpoint,
            "aws_region": "us-east-1",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        })
    }
}
