//! The HTTP API of a real `vcon-host run`, over real HTTP: every endpoint, every error status,
//! every answer checked against the OpenAPI document the host serves, and a client written for
//! the Python server (its documentation's curl examples) run unchanged.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{run, shared_vcons, stop, without_whitespace, Scratch};

const TOKEN: &str = "test-token-3f9a";
const PARTNER_KEY: &str = "partner-key-77";

/// The chain of the default config, plus a chain whose only storage is a webhook nobody
/// listens on (its writes dead-letter), a token, a partner key, a small body limit and a short
/// hot-store time to live (so reads fall back to the storages).
const CONFIG: &str = r#"
host:
  broker: ./data/broker.sqlite
  workers: 2
  batch_size: 8
  api_token: test-token-3f9a
  hot_ttl: 2s
  max_body_bytes: 65536
  retry: { max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms }
storages:
  sqlite:
    module: storage.sqlite
    options: { path: ./data/vcons.sqlite }
  file:
    module: storage.file
    options: { path: ./data/vcons }
  hook:
    module: storage.webhook
    options: { base_url: "http://127.0.0.1:9/nowhere", timeout: 1, retries: 0 }
links:
  tag:
    module: links.tag
    options: { tags: [api-test] }
chains:
  main:
    links: [tag]
    storages: [sqlite, file]
    ingress_lists: [default_ingress]
    egress_lists: [default_egress]
  hooked:
    links: []
    storages: [hook]
    ingress_lists: [hook_in]
ingress_auth:
  partner_list: [partner-key-77]
"#;

/// A running host and the address its API answers on.
struct ApiHost {
    child: Option<Child>,
    base: String,
    /// Every line the host wrote to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ApiHost {
    /// Starts `vcon-host run --bind 127.0.0.1:0` and reads the port it picked from its log.
    fn start(scratch: &Scratch) -> Self {
        let mut child = scratch
            .host()
            .args(["run", "--bind", "127.0.0.1:0"])
            .env("VCON_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[host] {line}");
                lines.lock().unwrap().push(line.clone());
                if let Some(rest) = line.strip_prefix("vcon-host: API on http://") {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the host did not report its API address");
        Self {
            child: Some(child),
            base: format!("http://{addr}"),
            log,
        }
    }

    /// A plain TCP connection to the API, for requests a client library would not send as
    /// written (a body after a pause, a body past the limit); reads time out after 10 s.
    fn connect_raw(&self) -> std::net::TcpStream {
        let stream = std::net::TcpStream::connect(self.base.trim_start_matches("http://")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    fn stop(mut self) {
        stop(self.child.take().unwrap());
    }
}

impl Drop for ApiHost {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One answer, kept for the OpenAPI check.
#[derive(Debug, Clone)]
struct Answer {
    method: String,
    path: String,
    status: u16,
    content_type: String,
    request_id: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{} {}: not JSON ({e}): {}",
                self.method, self.path, self.text
            )
        })
    }

    fn detail(&self) -> Value {
        self.json()["detail"].clone()
    }
}

/// A client that records every answer.
struct Client {
    agent: ureq::Agent,
    base: String,
    answers: Vec<Answer>,
}

impl Client {
    fn new(base: &str) -> Self {
        Self {
            agent: plain_agent(),
            base: base.to_owned(),
            answers: Vec::new(),
        }
    }

    fn call(&mut self, method: &str, path: &str, key: Option<&str>, body: Option<&[u8]>) -> Answer {
        let url = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json");
        let request = match key {
            Some(key) => request.header("x-conserver-api-token", key),
            None => request,
        };
        let mut response = self
            .agent
            .run(request.body(body.unwrap_or_default().to_vec()).unwrap())
            .unwrap();
        let answer = Answer {
            method: method.to_owned(),
            path: path.to_owned(),
            status: response.status().as_u16(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            request_id: response
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            text: response
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
                .unwrap(),
        };
        self.answers.push(answer.clone());
        answer
    }

    fn get(&mut self, path: &str) -> Answer {
        self.call("GET", path, Some(TOKEN), None)
    }

    fn post(&mut self, path: &str, body: &[u8]) -> Answer {
        self.call("POST", path, Some(TOKEN), Some(body))
    }

    fn delete(&mut self, path: &str) -> Answer {
        self.call("DELETE", path, Some(TOKEN), None)
    }

    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn fake_docs(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(shared_vcons().join("fake"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .take(n)
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let doc: Value = serde_json::from_slice(&bytes).unwrap();
            (doc["uuid"].as_str().unwrap().to_owned(), bytes)
        })
        .collect()
}

fn strings(answer: &Answer) -> Vec<String> {
    serde_json::from_value(answer.json()).unwrap()
}

#[test]
fn every_endpoint_answers_with_the_python_servers_statuses_and_the_documented_shapes() {
    let scratch = Scratch::with_config(CONFIG);
    let host = ApiHost::start(&scratch);
    let mut c = Client::new(&host.base);
    let docs = fake_docs(3);
    let (uuid, bytes) = &docs[0];

    // Auth: the Python server's 403 for a missing or wrong key; public routes stay open.
    let answer = c.call("GET", "/vcon", None, None);
    assert_eq!(
        (answer.status, answer.detail()),
        (403, json!("Invalid API Key"))
    );
    let answer = c.call("GET", "/api/vcon", Some("wrong"), None);
    assert_eq!(
        (answer.status, answer.detail()),
        (403, json!("Invalid API Key"))
    );
    for public in [
        "/health",
        "/version",
        "/stats/queue?list_name=x",
        "/metrics",
        "/openapi.json",
    ] {
        assert_eq!(c.call("GET", public, None, None).status, 200, "{public}");
    }
    let health = c.call("GET", "/api/health", None, None).json();
    assert_eq!(health["status"], "healthy");

    // Create: 201 and the document as stored (without the whitespace between its tokens),
    // queued for the chain (with and without /api).
    let created = c.post("/vcon?ingress_lists=default_ingress", bytes);
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(bytes.contains(&b' '), "the fake vCons have spaces to drop");
    assert_eq!(created.text.as_bytes(), without_whitespace(bytes));
    for (_, other) in &docs[1..] {
        assert_eq!(
            c.post("/api/vcon?ingress_lists=default_ingress", other)
                .status,
            201
        );
    }
    // Every one reaches both storages, then the egress list (popped newest first).
    c.wait_for("three vCons on the egress list", |c| {
        c.get("/vcon/count?egress_list=default_egress").json() == json!(3)
    });
    assert_eq!(scratch.sqlite_rows(), 3);
    assert_eq!(scratch.stored_files().len(), 3);
    let popped = strings(&c.get("/vcon/egress?egress_list=default_egress&limit=2"));
    assert_eq!(popped.len(), 2);
    assert_eq!(
        c.get("/vcon/count?egress_list=default_egress").json(),
        json!(1)
    );
    assert_eq!(
        c.get("/stats/queue?list_name=default_egress").json(),
        json!({"list_name": "default_egress", "depth": 1})
    );
    assert_eq!(c.get("/vcon/egress").status, 422, "egress_list is required");

    // Read one: the hot copy, then (after its 2 s time to live) the storages' copy.
    let one = c.get(&format!("/vcon/{uuid}"));
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["uuid"], json!(uuid));
    std::thread::sleep(Duration::from_millis(2500));
    let from_storage = c.get(&format!("/api/vcon/{uuid}"));
    assert_eq!(from_storage.status, 200, "read back from a storage");
    assert_eq!(from_storage.json()["uuid"], json!(uuid));
    let missing = "00000000-0000-4000-8000-000000000000";
    let answer = c.get(&format!("/vcon/{missing}"));
    assert_eq!(
        (answer.status, answer.detail()),
        (404, json!("vCon not found"))
    );
    assert_eq!(c.get("/vcon/not-a-uuid").status, 422);

    // Many, in the order asked, null for a miss.
    let many = c
        .get(&format!("/vcons?vcon_uuids={uuid}&vcon_uuids={missing}"))
        .json();
    assert_eq!(many[0]["uuid"], json!(uuid));
    assert_eq!(many[1], Value::Null);
    assert_eq!(c.get("/vcons").status, 422);

    // Listing: newest created_at first, paged.
    let all = strings(&c.get("/vcon?size=50"));
    assert_eq!(all.len(), 3);
    let page2 = strings(&c.get("/vcon?page=2&size=2"));
    assert_eq!(page2, all[2..].to_vec());
    assert_eq!(c.get("/vcon?since=not-a-date").status, 422);
    assert!(strings(&c.get("/vcon?since=2999-01-01T00:00:00Z")).is_empty());

    // Search by party.
    let doc: Value = serde_json::from_slice(bytes).unwrap();
    let party = doc["parties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mailto"].as_str().is_some_and(|m| !m.is_empty()))
        .unwrap();
    let mailto = party["mailto"].as_str().unwrap();
    let found = strings(&c.get(&format!("/vcons/search?mailto={mailto}")));
    assert!(found.contains(uuid), "{found:?}");
    let answer = c.get("/vcons/search");
    assert_eq!(answer.status, 400);

    // Bad bodies: malformed JSON, an invalid vCon (with the reason), too large.
    let answer = c.post("/vcon", b"{not json");
    assert_eq!(answer.status, 422);
    assert_eq!(answer.detail()[0]["type"], "json_invalid");
    let answer = c.post(
        "/vcon",
        br#"{"uuid": "nope", "dialog": [{"duration": -1}]}"#,
    );
    assert_eq!(answer.status, 422);
    assert!(answer.text.contains("duration"), "{}", answer.text);
    let huge = format!(
        r#"{{"uuid":"{missing}","subject":"{}"}}"#,
        "x".repeat(100 * 1024)
    );
    let answer = c.post("/vcon", huge.as_bytes());
    assert_eq!(answer.status, 413, "{}", answer.text);

    // Push known uuids to an ingress list (unknown ones skipped).
    let answer = c.post(
        "/vcon/ingress?ingress_list=default_ingress",
        format!(r#"["{uuid}", "{missing}"]"#).as_bytes(),
    );
    assert_eq!(answer.status, 204, "{}", answer.text);
    c.wait_for("the re-queued vCon on the egress list", |c| {
        c.get("/vcon/count?egress_list=default_egress").json() == json!(2)
    });
    assert_eq!(
        c.post("/vcon/ingress", b"[]").status,
        422,
        "ingress_list is required"
    );
    assert_eq!(
        c.post("/vcon/ingress?ingress_list=x", br#"["nope"]"#)
            .status,
        422
    );

    // External ingress: the partner's key for its list only, checked before the body.
    let partner = |c: &mut Client, list: &str, key: Option<&str>, body: &[u8]| {
        c.call(
            "POST",
            &format!("/vcon/external-ingress?ingress_list={list}"),
            key,
            Some(body),
        )
    };
    let (_, second) = &docs[1];
    let answer = partner(&mut c, "partner_list", None, second);
    assert_eq!(
        (answer.status, answer.detail()),
        (403, json!("API Key required"))
    );
    let answer = partner(&mut c, "partner_list", Some(TOKEN), second);
    assert_eq!(
        (answer.status, answer.detail()),
        (
            403,
            json!("Invalid API Key for ingress list 'partner_list'")
        )
    );
    let answer = partner(&mut c, "other", Some(PARTNER_KEY), b"not even read");
    assert_eq!(
        (answer.status, answer.detail()),
        (403, json!("Ingress list 'other' not configured"))
    );
    assert_eq!(
        partner(&mut c, "partner_list", Some(PARTNER_KEY), second).status,
        204
    );
    assert_eq!(
        c.get("/stats/queue?list_name=partner_list").json()["depth"],
        json!(1)
    );
    assert_eq!(
        partner(&mut c, "partner_list", Some(PARTNER_KEY), b"{").status,
        422
    );

    // A storage that cannot be written: its dead letters, and a replay that stops.
    let (third_uuid, third) = &docs[2];
    assert_eq!(c.post("/vcon?ingress_lists=hook_in", third).status, 201);
    c.wait_for("a storage dead letter", |c| {
        c.get("/dlq/storage?storage_name=hook")
            .json()
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    let dead = c.get("/dlq/storage?storage_name=hook").json();
    assert_eq!(dead[0]["uuid"], json!(third_uuid));
    assert!(!dead[0]["reason"].as_str().unwrap().is_empty());
    assert_eq!(
        c.post("/dlq/storage/reprocess?storage_name=hook&count=10", b"")
            .json(),
        json!(0)
    );
    assert_eq!(c.get("/dlq/storage?storage_name=nope").status, 404);
    assert_eq!(
        c.post("/dlq/storage/reprocess?storage_name=nope", b"")
            .status,
        404
    );
    assert_eq!(c.get("/dlq?ingress_list=default_ingress").json(), json!([]));
    assert_eq!(
        c.post("/dlq/reprocess?ingress_list=default_ingress", b"")
            .json(),
        json!(0)
    );
    assert_eq!(
        c.post("/dlq/reprocess?ingress_list=x&count=0", b"").status,
        422
    );

    // Config: secrets redacted; a change of host settings or code loading refused.
    let config = c.get("/config");
    assert_eq!(config.status, 200);
    assert!(!config.text.contains(TOKEN), "{}", config.text);
    assert!(!config.text.contains(PARTNER_KEY), "{}", config.text);
    let answer = c.post(
        "/config",
        br#"{"host": {"broker": "/tmp/x"}, "imports": {"x": "os"}}"#,
    );
    assert_eq!(answer.status, 422, "{}", answer.text);
    let answer = c.post(
        "/config",
        br#"{"chains": {"c": {"storages": ["missing"]}}}"#,
    );
    assert_eq!(
        answer.status, 422,
        "an invalid config is refused: {}",
        answer.text
    );
    let before = std::fs::read_to_string(scratch.path().join("config.yml")).unwrap();
    let mut new_config: Value =
        serde_json::to_value(serde_yaml::from_str::<Value>(&before).unwrap()).unwrap();
    new_config.as_object_mut().unwrap().remove("host");
    new_config["links"]["tag"]["options"]["tags"] = json!(["changed"]);
    let answer = c.post("/config", new_config.to_string().as_bytes());
    assert_eq!(answer.status, 204, "{}", answer.text);
    let after = std::fs::read_to_string(scratch.path().join("config.yml")).unwrap();
    assert!(after.contains("changed"), "{after}");
    assert!(
        after.contains("max_body_bytes"),
        "host settings kept: {after}"
    );

    // Delete: hot store, storages, listing and search entries. The webhook nobody listens on
    // cannot delete: 500 naming it (the Python server logs it and answers 204).
    let answer = c.delete(&format!("/vcon/{uuid}"));
    assert_eq!(answer.status, 500, "{}", answer.text);
    assert!(
        answer.detail().as_str().unwrap().contains("hook"),
        "{}",
        answer.text
    );
    // The failure is logged as JSON, in the request's span: its id, method and path.
    assert!(!answer.request_id.is_empty());
    std::thread::sleep(Duration::from_millis(100));
    let logged = host.log.lock().unwrap().clone();
    let line = logged
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["span"]["id"] == json!(answer.request_id))
        .unwrap_or_else(|| panic!("no log line of request {}: {logged:#?}", answer.request_id));
    assert_eq!(line["span"]["method"], "DELETE");
    assert!(
        !logged.iter().any(|l| l.contains(TOKEN)),
        "the key is never logged"
    );
    assert_eq!(c.get(&format!("/vcon/{uuid}")).status, 404);
    assert!(!strings(&c.get("/vcon")).contains(uuid));
    assert!(!strings(&c.get(&format!("/vcons/search?mailto={mailto}"))).contains(uuid));
    assert_eq!(
        c.delete(&format!("/vcon/{missing}")).status,
        500,
        "the webhook is still down"
    );
    assert_eq!(c.delete("/vcon/nope").status, 422);

    // Metrics.
    let metrics = c.get("/metrics").text;
    for series in [
        "vcon_host_http_requests_total{",
        "vcon_host_vcons_processed_total{chain=\"main\",outcome=\"stored\"}",
        "vcon_host_storage_writes_total{storage=\"sqlite\",outcome=\"ok\"}",
        "vcon_host_storage_call_seconds_bucket{",
        "vcon_host_list_depth{list=\"default_egress\"}",
        "vcon_host_dead_letters{list=\"DLQ:storage:hook\"} 1",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    assert!(!metrics.contains(TOKEN));

    let answers = std::mem::take(&mut c.answers);
    let spec = c.get("/openapi.json").json();
    check_against_openapi(&spec, &answers);
    host.stop();
}

/// Every answer must be one the document lists for its route, with a body its schema accepts,
/// and every documented operation must have been exercised.
fn check_against_openapi(spec: &Value, answers: &[Answer]) {
    let paths = spec["paths"].as_object().unwrap();
    let components = spec["components"].clone();
    let mut exercised = BTreeSet::new();
    for answer in answers {
        let path = answer.path.split('?').next().unwrap();
        let path = path.strip_prefix("/api").unwrap_or(path);
        let method = answer.method.to_ascii_lowercase();
        let (template, operation) = paths
            .iter()
            .filter_map(|(template, item)| {
                item.get(&method)
                    .filter(|_| template_matches(template, path))
                    .map(|op| (template, op))
            })
            // A literal route (`/vcon/count`) wins over a template (`/vcon/{uuid}`), as in axum.
            .min_by_key(|(template, _)| template.contains('{'))
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        exercised.insert(format!("{method} {template}"));
        let response = operation["responses"]
            .get(answer.status.to_string())
            .unwrap_or_else(|| {
                panic!(
                    "{method} {template} answered {} which is not documented: {}",
                    answer.status, answer.text
                )
            });
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            assert!(
                answer.text.is_empty(),
                "{method} {template} {}: a body where none is documented",
                answer.status
            );
            continue;
        };
        let (media, body) = content.iter().next().unwrap();
        assert!(
            answer.content_type.starts_with(media.as_str()),
            "{method} {template} {}: content type {} but documented {media}",
            answer.status,
            answer.content_type
        );
        if media == "application/json" {
            let mut schema = body["schema"].clone();
            schema["components"] = components.clone();
            let validator = jsonschema::validator_for(&schema)
                .unwrap_or_else(|e| panic!("{method} {template}: bad schema: {e}"));
            let instance = answer.json();
            if let Err(err) = validator.validate(&instance) {
                panic!(
                    "{method} {template} {}: the answer does not match the document: {err}\n{}",
                    answer.status, answer.text
                );
            }
        }
    }
    let documented: BTreeSet<String> = paths
        .iter()
        .flat_map(|(template, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{method} {template}"))
        })
        .collect();
    let missed: Vec<_> = documented.difference(&exercised).collect();
    assert!(missed.is_empty(), "documented but never called: {missed:?}");
}

fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
}

#[test]
fn a_public_address_without_a_token_is_refused() {
    let scratch = Scratch::default_chain();
    let (code, out) = run(scratch.host().args(["run", "--bind", "0.0.0.0:0"]));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        !out.contains("workers on chains"),
        "refused before starting: {out}"
    );
    assert!(out.contains("without an API token"), "{out}");
    assert!(out.contains("CONSERVER_API_TOKEN"), "{out}");
}

#[test]
fn ingest_sends_to_a_running_host_over_http() {
    let scratch = Scratch::with_config(CONFIG);
    let host = ApiHost::start(&scratch);
    let dir = scratch.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    for (uuid, bytes) in fake_docs(20) {
        std::fs::write(dir.join(format!("{uuid}.json")), bytes).unwrap();
    }
    std::fs::write(dir.join("bad.json"), b"{\"uuid\": \"nope\"}").unwrap();
    let ingest = |token: &str| {
        let mut cmd = crate::support::vcon_host();
        cmd.args([
            "ingest",
            "--url",
            &format!("{}/api", host.base),
            "--list",
            "default_ingress",
        ])
        .arg(&dir)
        .env("CONSERVER_API_TOKEN", token);
        run(&mut cmd)
    };
    let (code, out) = ingest("wrong");
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("refused the API key"), "{out}");
    let (code, out) = ingest(TOKEN);
    assert_eq!(code, Some(1), "one document is invalid: {out}");
    assert!(out.contains("accepted 20, refused 1"), "{out}");
    assert!(out.contains("bad.json: HTTP 422"), "{out}");
    scratch.wait_for("20 rows", 30, || scratch.sqlite_rows() == 20);
    host.stop();
}

#[test]
fn the_python_servers_documented_curl_examples_work_unchanged() {
    // Without the unreachable webhook, whose deletes fail.
    let config = CONFIG
        .replace(
            "  hook:\n    module: storage.webhook\n",
            "  unused:\n    module: memory\n",
        )
        .replace(
            "    options: { base_url: \"http://127.0.0.1:9/nowhere\", timeout: 1, retries: 0 }\n",
            "",
        )
        .replace("storages: [hook]", "storages: [unused]");
    assert!(!config.contains("webhook"));
    let scratch = Scratch::with_config(&config);
    let host = ApiHost::start(&scratch);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python-client/curl_examples.sh");
    let (uuid, bytes) = fake_docs(1).pop().unwrap();
    let doc = scratch.path().join("example.vcon.json");
    std::fs::write(&doc, bytes).unwrap();
    let (code, out) = run(std::process::Command::new("bash")
        .arg(&script)
        .env("CONSERVER_URL", format!("{}/api", host.base))
        .env("CONSERVER_API_TOKEN", TOKEN)
        .env("VCON_FILE", &doc)
        .env("VCON_UUID", &uuid));
    assert_eq!(code, Some(0), "the curl examples failed:\n{out}");
    assert!(out.contains("all examples passed"), "{out}");
    host.stop();
}

/// A host whose chain reads a list nobody posts to: only the API and the broker are at work.
const API_ONLY: &str = r#"
host: { broker: ./data/broker.sqlite, workers: 1 }
storages:
  sqlite: { module: storage.sqlite, options: { path: ./data/vcons.sqlite } }
links: {}
chains:
  main: { links: [], storages: [sqlite], ingress_lists: [nobody_posts_here] }
"#;

/// Sends `request` on `stream` and reads one answer: its status line and body.
fn exchange(stream: &mut std::net::TcpStream, request: &str) -> (String, String) {
    use std::io::{Read, Write};
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(!status.is_empty(), "the host closed the connection");
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status.trim().to_owned(), String::from_utf8(body).unwrap())
}

/// A request refused for its query (no `ingress_list`) leaves the connection open for the next
/// request, as uvicorn does, even when its body comes in a write of its own after the head (as
/// ureq sends it): answered before its body arrived, hyper would close the connection, and a
/// client of the Python server reusing it would find it gone at its next request.
#[test]
fn a_request_refused_for_its_query_leaves_the_connection_open() {
    use std::io::Write;
    let scratch = Scratch::with_config(API_ONLY);
    let host = ApiHost::start(&scratch);
    let mut stream = host.connect_raw();
    let body = r#"["00000000-0000-4000-8000-000000000000"]"#;
    let head = format!(
        "POST /api/vcon/ingress HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    for round in 0..3 {
        stream.write_all(head.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (status, text) = exchange(&mut stream, body);
        assert!(status.contains(" 422 "), "round {round}: {status} {text}");
        assert!(text.contains("ingress_list"), "{text}");
        let (status, _) = exchange(
            &mut stream,
            "GET /api/health HTTP/1.1\r\nhost: test\r\n\r\n",
        );
        assert!(status.contains(" 200 "), "round {round}: {status}");
    }
    host.stop();
}

/// A body over the limit is answered `413` before the rest of it is read, and a request without
/// the key `403` before its body is read, so the host closes the connection, and says so
/// (`connection: close`) so a client does not send its next request on it.
#[test]
fn a_body_over_the_limit_is_answered_with_connection_close() {
    use std::io::Write;
    let scratch = Scratch::with_config(CONFIG);
    let host = ApiHost::start(&scratch);
    let mut stream = host.connect_raw();
    let body = vec![b' '; 200_000];
    let head = format!(
        "POST /api/vcon HTTP/1.1\r\nhost: test\r\nx-conserver-api-token: {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The host may close before all of it is sent.
    let _ = stream.write_all(&body);
    let answer = answer_until_closed(stream);
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");

    // Refused for its key before the body is read: the same.
    let mut stream = host.connect_raw();
    let _ = stream.write_all(
        b"POST /api/vcon HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
          content-length: 2\r\n\r\n{}",
    );
    let answer = answer_until_closed(stream);
    assert!(answer.starts_with("http/1.1 403"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    host.stop();
}

/// Everything the host sends on `stream` until it closes it, lowercased (header names vary in
/// case).
fn answer_until_closed(mut stream: std::net::TcpStream) -> String {
    use std::io::Read;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).to_lowercase()
}

/// Concurrent `POST /vcon`s share broker commits (the group commit), each still queued only on
/// the lists its own request named, and every acknowledged vCon is stored, listed and queued
/// exactly once.
#[test]
fn concurrent_posts_share_commits_and_each_lands_on_its_own_lists() {
    let scratch = Scratch::with_config(API_ONLY);
    let host = ApiHost::start(&scratch);
    let docs = fake_docs(400);
    let posted: BTreeSet<String> = docs.iter().map(|(uuid, _)| uuid.clone()).collect();
    let threads: Vec<_> = docs
        .chunks(25)
        .enumerate()
        .map(|(k, chunk)| {
            let chunk = chunk.to_vec();
            let url = format!(
                "{}/api/vcon?ingress_lists={}",
                host.base,
                if k % 2 == 0 { "a" } else { "b" }
            );
            std::thread::spawn(move || {
                let agent = plain_agent();
                for (uuid, bytes) in chunk {
                    let (status, text) = post_json(&agent, &url, &bytes);
                    assert_eq!(status, 201, "{uuid}: {text}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut client = Client::new(&host.base);
    for list in ["a", "b"] {
        let count = client.get(&format!("/vcon/count?egress_list={list}"));
        assert_eq!(
            count.json(),
            json!(200),
            "list {list}: each vCon queued once"
        );
    }
    let listed: BTreeSet<String> = strings(&client.get("/vcon?size=1000"))
        .into_iter()
        .collect();
    assert_eq!(listed, posted, "every acknowledged vCon is listed");
    let vcons = metric(&mut client, "vcon_host_api_ingest_batch_vcons_sum");
    let commits = metric(&mut client, "vcon_host_api_ingest_batch_vcons_count");
    assert_eq!(vcons, 400.0, "every vCon went through the group commit");
    assert!(
        commits < vcons,
        "{commits} commits for {vcons} concurrent POSTs: none shared a commit"
    );
    host.stop();
}

/// An agent that answers every status as a value (the tests assert on them).
fn plain_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Posts `bytes` as JSON to `url`: the status and the body.
fn post_json(agent: &ureq::Agent, url: &str, bytes: &[u8]) -> (u16, String) {
    let mut answer = agent
        .post(url)
        .header("content-type", "application/json")
        .send(bytes)
        .unwrap();
    let text = answer.body_mut().read_to_string().unwrap();
    (answer.status().as_u16(), text)
}

/// The value of the sample `name` in the host's `/metrics`.
fn metric(client: &mut Client, name: &str) -> f64 {
    let metrics = client.get("/metrics").text;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{metrics}"))
}

/// A fake vCon made larger than 64 KiB by an attachment, with a fresh uuid; with `bad_tel`, a
/// party whose `tel` the Python server's model refuses.
fn large_vcon(i: usize, bad_tel: bool) -> (String, Vec<u8>) {
    let (_, bytes) = fake_docs(1).remove(0);
    let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
    let uuid = format!("00000000-0000-4000-8000-{i:012}");
    doc["uuid"] = json!(uuid);
    doc["attachments"] =
        json!([{ "type": "notes", "encoding": "none", "body": "x".repeat(100_000) }]);
    if bad_tel {
        doc["parties"][0]["tel"] = json!("not a number");
    }
    (uuid, serde_json::to_vec(&doc).unwrap())
}

/// Large bodies posted concurrently are validated off the API thread (the metric says so) with
/// the same outcome as inline: valid ones stored, invalid ones refused with the reason. A lone
/// large post stays on the API thread.
#[test]
fn concurrent_large_posts_are_validated_off_the_api_thread_with_the_same_answers() {
    let scratch = Scratch::with_config(API_ONLY);
    let host = ApiHost::start(&scratch);
    let mut client = Client::new(&host.base);
    let off_thread =
        |client: &mut Client| metric(client, "vcon_host_api_validated_off_thread_total");
    let (_, lone) = large_vcon(0, false);
    assert_eq!(client.post("/vcon", &lone).status, 201);
    assert_eq!(
        off_thread(&mut client),
        0.0,
        "a lone post is validated inline"
    );

    let threads: Vec<_> = (0..4)
        .map(|t| {
            let url = format!("{}/api/vcon", host.base);
            std::thread::spawn(move || {
                let agent = plain_agent();
                let mut stored = Vec::new();
                for k in 0..10 {
                    let bad = k % 3 == 2;
                    let (uuid, bytes) = large_vcon(1 + t * 100 + k, bad);
                    let (status, text) = post_json(&agent, &url, &bytes);
                    if bad {
                        assert_eq!(status, 422, "{uuid}: {text}");
                        assert!(text.contains("tel"), "{uuid}: the reason is given: {text}");
                    } else {
                        assert_eq!(status, 201, "{uuid}: {text}");
                        stored.push(uuid);
                    }
                }
                stored
            })
        })
        .collect();
    let stored: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        off_thread(&mut client) > 0.0,
        "four clients posting 100 KB vCons: none was validated off the API thread"
    );
    for uuid in &stored {
        let one = client.get(&format!("/vcon/{uuid}"));
        assert_eq!(one.status, 200, "{uuid} stored");
        assert_eq!(
            one.json()["attachments"][0]["body"].as_str().map(str::len),
            Some(100_000)
        );
    }
    // Each large document was written while it was validated (staged); the invalid ones' were
    // given up, so rows name only the stored vCons' documents, each in a segment that is there.
    let named = named_documents(&scratch);
    assert_eq!(
        named.len(),
        stored.len() + 1,
        "documents of the stored vCons (and only those): {named:?}"
    );
    let segments = segments(&scratch);
    assert!(
        named.iter().all(|name| segments.contains(name)),
        "{named:?} in {segments:?}"
    );
    host.stop();
}

/// The segment files of the host's broker (`documents.rs` in the broker crate).
fn segments(scratch: &Scratch) -> Vec<String> {
    std::fs::read_dir(scratch.path().join("data/broker.sqlite-documents"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".seg"))
                .collect()
        })
        .unwrap_or_default()
}

/// The document file each hot copy kept apart names, read from the broker's database.
fn named_documents(scratch: &Scratch) -> Vec<String> {
    let broker = rusqlite::Connection::open(scratch.path().join("data/broker.sqlite")).unwrap();
    let mut select = broker
        .prepare("SELECT document_file FROM vcons WHERE document_file IS NOT NULL")
        .unwrap();
    let names = select.query_map([], |row| row.get(0)).unwrap();
    names.map(Result::unwrap).collect()
}

#[test]
fn a_large_vcon_posted_alone_is_written_while_validated_and_an_invalid_one_leaves_nothing() {
    let scratch = Scratch::with_config(API_ONLY);
    let host = ApiHost::start(&scratch);
    let mut client = Client::new(&host.base);
    let (uuid, good) = large_vcon(0, false);
    assert_eq!(client.post("/vcon", &good).status, 201);
    assert_eq!(
        metric(&mut client, "vcon_host_api_documents_staged_total"),
        1.0,
        "a lone large post has its document written while it is validated"
    );
    assert_eq!(segments(&scratch).len(), 1, "one segment");
    assert_eq!(
        named_documents(&scratch),
        segments(&scratch),
        "staged and recorded"
    );
    let (_, bad) = large_vcon(1, true);
    let refused = client.post("/vcon", &bad);
    assert_eq!(refused.status, 422, "{}", refused.text);
    let one = client.get(&format!("/vcon/{uuid}"));
    assert_eq!(one.status, 200);
    assert_eq!(one.text.as_bytes(), good.as_slice(), "answered as posted");
    // Once the valid vCon is deleted no row names the segment, and the invalid one's staged
    // document does not keep it either: the host leaves nothing when it stops.
    assert_eq!(client.delete(&format!("/vcon/{uuid}")).status, 204);
    assert!(named_documents(&scratch).is_empty());
    host.stop();
    assert_eq!(
        segments(&scratch),
        Vec::<String>::new(),
        "the host left a segment no vCon names"
    );
}

/// When the broker cannot write a large document's file (here a file stands where its
/// directory should be), the post is answered 500 with what to check, nothing of it is kept,
/// and small vCons, which need no file, are still taken.
#[test]
fn a_large_vcon_the_broker_cannot_write_is_refused_with_the_reason_and_small_ones_still_land() {
    let scratch = Scratch::with_config(API_ONLY);
    std::fs::create_dir_all(scratch.path().join("data")).unwrap();
    std::fs::write(
        scratch.path().join("data/broker.sqlite-documents"),
        b"in the way",
    )
    .unwrap();
    let host = ApiHost::start(&scratch);
    let mut client = Client::new(&host.base);
    let (uuid, large) = large_vcon(0, false);
    let refused = client.post("/vcon", &large);
    assert_eq!(refused.status, 500, "{}", refused.text);
    assert!(
        refused.text.contains("broker.sqlite-documents") && refused.text.contains("disk full"),
        "the answer says which directory and what to check: {}",
        refused.text
    );
    assert_eq!(
        client.get(&format!("/vcon/{uuid}")).status,
        404,
        "nothing kept"
    );
    let (small_uuid, small) = fake_docs(1).remove(0);
    assert_eq!(client.post("/vcon", &small).status, 201);
    assert_eq!(client.get(&format!("/vcon/{small_uuid}")).status, 200);
    host.stop();
}

/// CPU time (user and system) the process `pid` has used so far, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let getconf = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let per_second: u64 = String::from_utf8_lossy(&getconf.stdout)
        .trim()
        .parse()
        .unwrap();
    Duration::from_millis(ticks * 1000 / per_second)
}

/// The API thread busy-polls for a moment after each answer, so a client's next request finds
/// it awake; once requests stop, it must go to sleep: an idle host uses next to no CPU. The same
/// with polling turned off (`host.api_busy_poll_us: 0`), which must still answer everything.
#[test]
fn an_idle_host_stops_polling_after_its_last_answer() {
    let off = API_ONLY.replace("workers: 1 }", "workers: 1, api_busy_poll_us: 0 }");
    for config in [API_ONLY, off.as_str()] {
        let scratch = Scratch::with_config(config);
        let host = ApiHost::start(&scratch);
        let pid = host.child.as_ref().unwrap().id();
        let mut client = Client::new(&host.base);
        for (_, doc) in fake_docs(50) {
            assert_eq!(client.post("/vcon", &doc).status, 201);
        }
        assert_eq!(client.get("/health").status, 200);
        std::thread::sleep(Duration::from_millis(200));
        let before = cpu_time(pid);
        std::thread::sleep(Duration::from_secs(2));
        let used = cpu_time(pid) - before;
        assert!(
            used < Duration::from_millis(300),
            "the idle host used {used:?} of CPU in 2 s: something keeps polling after the last \
             answer\n{config}"
        );
        host.stop();
    }
}

/// A pretty-printed vCon is stored and answered without the whitespace between its tokens, and
/// is the same JSON; with `host.keep_whitespace: true`, byte for byte as posted. Both ways in
/// (`POST /vcon` of a large vCon, whose compaction and write run on the broker thread, and of a
/// small one, compacted on the API thread; `vcon-host ingest`), and all the way to a storage.
#[test]
fn a_pretty_printed_vcon_is_stored_without_its_whitespace_unless_the_config_keeps_it() {
    let cat1 =
        std::fs::read(shared_vcons().join("reference-fixtures/valid/cat1_vcon.json")).unwrap();
    let cat1_uuid = serde_json::from_slice::<Value>(&cat1).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (small_uuid, small) = fake_docs(1).remove(0);
    let pretty_small =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&small).unwrap()).unwrap();
    for keep in [false, true] {
        let scratch = Scratch::with_config(&format!(
            r#"
host: {{ broker: ./data/broker.sqlite, workers: 1, keep_whitespace: {keep} }}
storages:
  file: {{ module: storage.file, options: {{ path: ./data/vcons }} }}
links: {{}}
chains:
  main: {{ links: [], storages: [file], ingress_lists: [default_ingress] }}
"#
        ));
        let stored_form = |posted: &[u8]| {
            if keep {
                posted.to_vec()
            } else {
                without_whitespace(posted)
            }
        };
        let host = ApiHost::start(&scratch);
        let mut client = Client::new(&host.base);
        for (uuid, posted) in [(&cat1_uuid, &cat1), (&small_uuid, &pretty_small)] {
            let created = client.post("/vcon?ingress_lists=default_ingress", posted);
            assert_eq!(created.status, 201, "{}", created.text);
            let expected = stored_form(posted);
            assert!(
                keep || expected.len() * 5 < posted.len() * 4,
                "pretty-printed: {} of {} bytes are whitespace between tokens",
                posted.len() - expected.len(),
                posted.len()
            );
            assert_eq!(created.text.as_bytes(), expected, "answered (keep: {keep})");
            let read = client.get(&format!("/vcon/{uuid}"));
            assert_eq!(read.text.as_bytes(), expected, "read back (keep: {keep})");
            assert_eq!(
                serde_json::from_slice::<Value>(&expected).unwrap(),
                serde_json::from_slice::<Value>(posted).unwrap(),
                "the same JSON"
            );
        }
        assert_eq!(
            metric(&mut client, "vcon_host_api_documents_staged_total"),
            1.0,
            "cat1 went through the broker thread's staging"
        );
        scratch.wait_for("both vCons in the file storage", 60, || {
            scratch.stored_files().len() == 2
        });
        for file in scratch.stored_files() {
            let bytes = std::fs::read(&file).unwrap();
            let posted = if bytes.len() > 100_000 {
                &cat1
            } else {
                &pretty_small
            };
            assert_eq!(bytes, stored_form(posted), "{}", file.display());
        }
        host.stop();

        // `vcon-host ingest` stores what the API stores.
        let ingested_uuid = "00000000-0000-4000-8000-00000000beef";
        let mut doc: Value = serde_json::from_slice(&small).unwrap();
        doc["uuid"] = json!(ingested_uuid);
        let pretty = serde_json::to_vec_pretty(&doc).unwrap();
        let path = scratch.path().join("pretty.json");
        std::fs::write(&path, &pretty).unwrap();
        let (code, out) = run(scratch
            .host()
            .args(["ingest", "--list", "elsewhere"])
            .arg(&path));
        assert_eq!(code, Some(0), "{out}");
        let read = scratch
            .host()
            .args(["get", ingested_uuid])
            .output()
            .unwrap();
        assert!(read.status.success(), "{read:?}");
        let mut expected = stored_form(&pretty);
        expected.push(b'\n');
        assert_eq!(read.stdout, expected, "ingested (keep: {keep})");
    }
}

/// The API's broker work (staging large documents, writing the group commit's batches) runs on
/// one polling thread: with one for each, each polling after its job, the two pollers took
/// turns with the client and the API thread for two cores (docs/benchmarks.md, "One broker
/// thread").
#[test]
fn the_apis_broker_work_runs_on_one_thread() {
    let scratch = Scratch::with_config(API_ONLY);
    let host = ApiHost::start(&scratch);
    let pid = host.child.as_ref().unwrap().id();
    let mut client = Client::new(&host.base);
    let (_, large) = large_vcon(0, false);
    assert_eq!(client.post("/vcon", &large).status, 201);
    assert_eq!(
        metric(&mut client, "vcon_host_api_documents_staged_total"),
        1.0,
        "staged"
    );
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .filter(|name| name.starts_with("vcon-api"))
        .collect();
    names.sort();
    names.dedup_by(|a, b| a == b && a == "vcon-api");
    // `vcon-api-main` holds the server; `vcon-api` is its runtime's thread (and blocking
    // pool); one other, no stager or writer of its own.
    assert_eq!(
        names,
        ["vcon-api", "vcon-api-broker", "vcon-api-main"],
        "the API's threads"
    );
    host.stop();
}
