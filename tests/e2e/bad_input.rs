//! Bad input never gets past the HTTP layer: every malformed body, unknown operation or field,
//! oversized body, traversal attempt in a repo id / revision / file name (plain, absolute,
//! backslashed, NUL, percent-encoded, over-long), unknown job id, unknown route and wrong method
//! gets a 4xx JSON `{error, message}`, no job is created, upstream is never asked, and nothing
//! appears in or outside the cache directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::harness::fixtures::tree;
use crate::harness::{http, FakeHub, Hive};

/// A hive whose cache, HOME and TMPDIR all live in one temporary tree we can watch.
struct Sandbox {
    root: TempDir,
    hive: Hive,
}

impl Sandbox {
    fn new(hub: &FakeHub) -> Self {
        let root = TempDir::new().expect("sandbox dir");
        for d in ["cache", "home", "tmp"] {
            std::fs::create_dir(root.path().join(d)).expect("sandbox subdir");
        }
        let p = |d: &str| root.path().join(d).display().to_string();
        let hive = Hive::builder()
            .hub(hub)
            .arg("--cache-dir")
            .arg(&p("cache"))
            .env("HOME", &p("home"))
            .env("TMPDIR", &p("tmp"))
            .spawn();
        Self { root, hive }
    }

    fn tree(&self) -> BTreeMap<PathBuf, String> {
        // Also the hive's own log dir and default cache (it must not touch either).
        let mut t = tree(self.root.path());
        t.extend(tree(self.hive.cache_dir()).into_iter().map(|(p, w)| (Path::new("default-cache").join(p), w)));
        t
    }
}

/// One request and what it must get.
struct Case {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    status: u16,
    error: &'static str,
    /// A substring the message must contain (names the offending thing).
    mentions: &'static str,
}

fn case(method: &'static str, path: &str, status: u16, error: &'static str, mentions: &'static str) -> Case {
    Case { method, path: path.to_owned(), body: None, status, error, mentions }
}

fn post(body: impl Into<Vec<u8>>, status: u16, error: &'static str, mentions: &'static str) -> Case {
    Case { body: Some(body.into()), ..case("POST", "/v1/jobs", status, error, mentions) }
}

fn model_id(repo: &str, file: Option<&str>) -> String {
    file.map_or_else(|| repo.to_owned(), |f| format!("{repo}:{f}"))
}

fn download(model: &str, file: Option<&str>, revision: Option<&str>, mentions: &'static str) -> Case {
    let mut d = json!({ "operation": "model_download", "hive_id": "localhost", "model": model_id(model, file) });
    if let Some(r) = revision {
        d["revision"] = json!(r);
    }
    post(d.to_string(), 400, "invalid_name", mentions)
}

fn delete(repo: &str, file: Option<&str>, mentions: &'static str) -> Case {
    let d = json!({ "operation": "model_delete", "hive_id": "localhost", "id": model_id(repo, file) });
    post(d.to_string(), 400, "invalid_name", mentions)
}

/// Names that must never become a path: each is tried as repo id, file name and revision.
fn evil_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "..",
        "../x",
        "a/../../b",
        "/etc/passwd",
        "/abs",
        "a\\b",
        "..\\..\\x",
        "a\0b",
        "x\u{0}",
        "a\nb",
        "%2e%2e",
        "%2e%2e/x",
        "a%2Fb",
        "..%2F..%2Fx",
        "%2F",
        "./x",
        "a//b",
        "a/",
        "",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    v.push("x".repeat(2000));
    v.push(format!("a/{}", "y".repeat(300)));
    v
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        post("{", 400, "invalid_operation", "invalid operation"),
        post("", 400, "invalid_operation", "invalid operation"),
        post("null", 400, "invalid_operation", "invalid operation"),
        post("[]", 400, "invalid_operation", "invalid operation"),
        post("{}", 400, "invalid_operation", "invalid operation"),
        post("\"model_list\"", 400, "invalid_operation", "invalid operation"),
        post(r#"{"operation":"nope"}"#, 400, "invalid_operation", "nope"),
        post(r#"{"operation":7}"#, 400, "invalid_operation", "must be a string"),
        // The old externally tagged form is refused with a hint at rbee's form.
        post(r#"{"ModelList":{}}"#, 400, "invalid_operation", "`operation` field"),
        post(r#"{"operation":"model_download"}"#, 400, "invalid_operation", "model"),
        post(r#"{"operation":"model_download","hive_id":"localhost"}"#, 400, "invalid_operation", "model"),
        post(r#"{"operation":"model_delete","hive_id":"localhost"}"#, 400, "invalid_operation", "id"),
        post(r#"{"operation":"model_get","hive_id":"localhost"}"#, 400, "invalid_operation", "id"),
        post(r#"{"operation":"model_download","model":7}"#, 400, "invalid_operation", "invalid type"),
        post(
            r#"{"operation":"model_download","model":"a/b","revision":["main"]}"#,
            400,
            "invalid_operation",
            "invalid",
        ),
        post(vec![0xff, 0xfe, b'{'], 400, "invalid_operation", "invalid operation"),
        // Over 64 KiB, whatever it holds.
        post(
            json!({"operation": "model_list", "hive_id": "x".repeat(70_000)}).to_string(),
            413,
            "body_too_large",
            "65536",
        ),
        post(vec![b' '; 64 * 1024 + 1], 413, "body_too_large", "65536"),
        // Repo ids of the wrong shape.
        download("a/b/c", Some("model.gguf"), None, "model"),
        download(".hidden/x", Some("model.gguf"), None, "model"),
        download("org--x/y", Some("model.gguf"), None, "model"),
        download(&format!("org/{}", "n".repeat(97)), Some("model.gguf"), None, "model"),
        download("org/na me", Some("model.gguf"), None, "model"),
    ];
    for evil in evil_names() {
        cases.push(download(&evil, Some("model.gguf"), None, "model"));
        cases.push(download("rbee-test/tiny-model", Some(&evil), None, "file"));
        cases.push(download("rbee-test/tiny-model", Some("model.gguf"), Some(&evil), "revision"));
        cases.push(delete(&evil, None, "model"));
        cases.push(delete("rbee-test/tiny-model", Some(&evil), "file"));
    }
    cases.extend(path_cases());
    cases
}

/// Bad ids and names in the URL itself, unknown routes and wrong methods.
fn path_cases() -> Vec<Case> {
    let long_job = format!("/v1/jobs/{}", "j".repeat(4000));
    let long_model = format!("/v1/models/org/{}", "n".repeat(2000));
    let mut v = Vec::new();
    // Job ids that name no job (`job_not_found`) and paths no route takes (`not_found`): 404,
    // naming what was asked for. URL parsing resolves `%2e%2e` segments like `..` (WHATWG):
    // those never reach a route.
    for (method, path, error, mentions) in [
        ("GET", "/v1/jobs/job-0000000000000000", "job_not_found", "job-0000000000000000"),
        ("DELETE", "/v1/jobs/job-0000000000000000", "job_not_found", "job-0000000000000000"),
        ("GET", "/v1/jobs/job-0000000000000000/stream", "job_not_found", "no such job"),
        ("GET", "/v1/jobs/..%2F..%2Fetc", "job_not_found", "no job"),
        ("GET", "/v1/jobs/%00/stream", "job_not_found", "no such job"),
        ("GET", long_job.as_str(), "job_not_found", "no job"),
        ("DELETE", "/v1/jobs/%2e%2e", "not_found", "no route for DELETE /v1/"),
        ("GET", "/nope", "not_found", "/nope"),
        ("GET", "/v1/jobs/a/b/c", "not_found", "no route"),
        ("DELETE", "/v1/models/%2e%2e/x", "not_found", "no route for DELETE /v1/x"),
        ("DELETE", "/v1/models/%2e%2e", "not_found", "no route"),
    ] {
        v.push(case(method, path, 404, error, mentions));
    }
    v.push(case("DELETE", "/v1/models/..%2e/x", 400, "invalid_name", "percent-encoding"));
    v.push(case("DELETE", "/v1/models/org/name?bogus=1", 400, "invalid_query", "bogus"));
    v.push(case("DELETE", "/v1/models/org/name?partial=yes", 400, "invalid_query", "partial"));
    v.push(case("DELETE", "/v1/models/org/name", 404, "model_not_found", "org/name"));
    v.push(case("DELETE", &long_model, 400, "invalid_name", "model"));
    // Model names that decode to a path, a backslash or a NUL.
    for model in ["..%2F..%2Fetc/passwd", "a%5Cb/x", "a%00/x"] {
        v.push(case("DELETE", &format!("/v1/models/{model}"), 400, "invalid_name", "model"));
    }
    // File names that climb out, are absolute, hide a backslash or a NUL, are encoded twice, or empty.
    for file in ["../../x", "%2Fetc%2Fpasswd", "a%5C..%5Cb", "%00", "%252e%252e", ""] {
        v.push(case("DELETE", &format!("/v1/models/org/name?file={file}"), 400, "invalid_name", "file"));
    }
    // Every method a route does not answer: 405, naming the method, with the route's `Allow`.
    for (path, allow) in ROUTES {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"].into_iter().filter(|m| !allow.contains(m)) {
            v.push(case(method, path, 405, "method_not_allowed", method));
        }
    }
    v
}

/// Each route of the hive (one concrete path for it) and the methods it answers.
const ROUTES: &[(&str, &str)] = &[
    ("/v1/jobs", "GET, HEAD, POST"),
    ("/health", "GET, HEAD"),
    ("/v1/jobs/job-1", "GET, HEAD, DELETE"),
    ("/v1/jobs/job-1/stream", "GET, HEAD"),
    ("/v1/models", "GET, HEAD"),
    ("/v1/models/org/name", "DELETE"),
    ("/v1/shutdown", "POST"),
];

fn allow_for(path: &str) -> Option<&'static str> {
    ROUTES.iter().find(|(p, _)| *p == path).map(|(_, a)| *a)
}

#[track_caller]
fn check(hive: &Hive, c: &Case) -> Option<String> {
    let url = format!("{}{}", hive.url(), c.path);
    let r = match http::request(c.method, &url, &[], c.body.as_deref()) {
        Ok(r) => r,
        Err(e) => return Some(format!("{} {}: no answer: {e}", c.method, c.path)),
    };
    let what = || format!("{} {} body {:?}", c.method, c.path, c.body.as_ref().map(|b| String::from_utf8_lossy(b)));
    let short = |s: String| if s.len() > 200 { format!("{}…", &s[..200]) } else { s };
    if r.status != c.status {
        return Some(format!("{}: status {} (expected {}), body {}", short(what()), r.status, c.status, r.text()));
    }
    if !r.header("content-type").is_some_and(|t| t.starts_with("application/json")) {
        return Some(format!("{}: content-type {:?}", short(what()), r.header("content-type")));
    }
    let body = r.json();
    let keys: Vec<&str> = body.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    if keys != ["error", "message"] {
        return Some(format!("{}: body is not exactly {{error, message}}: {}", short(what()), r.text()));
    }
    if body["error"] != c.error {
        return Some(format!("{}: error {} (expected {})", short(what()), body["error"], c.error));
    }
    let message = body["message"].as_str().unwrap_or_default();
    if message.is_empty() || !message.contains(c.mentions) {
        return Some(format!("{}: message {message:?} does not mention {:?}", short(what()), c.mentions));
    }
    if c.status == 405 {
        let want = allow_for(&c.path);
        if r.header("allow") != want {
            return Some(format!("{}: Allow {:?} (expected {want:?})", short(what()), r.header("allow")));
        }
    }
    None
}

#[test]
fn bad_input_gets_4xx_json_and_writes_nothing() {
    let hub = FakeHub::with_default_repo();
    let sandbox = Sandbox::new(&hub);
    let hive = &sandbox.hive;
    let before = sandbox.tree();
    let cases = cases();
    let failures: Vec<String> = cases.iter().filter_map(|c| check(hive, c)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} bad requests were not refused as expected:\n{}\nhive log:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        hive.log()
    );
    let (status, health) = hive.get("/health");
    assert_eq!(status, 200);
    assert_eq!(health["jobs"], 0, "a refused request created a job: {health}");
    assert_eq!(hive.get("/v1/jobs").1, Value::Array(vec![]));
    let stats = hub.stats();
    assert!(stats.requests.is_empty() && stats.connections.is_empty(), "upstream was asked: {:?}", stats.requests);
    let after = sandbox.tree();
    assert_eq!(before, after, "the tree under the sandbox changed\nhive log:\n{}", hive.log());
    assert!(!hive.log().contains("panicked"), "the hive panicked:\n{}", hive.log());
}

#[test]
fn keep_alive_survives_refusals() {
    // After a refused request with an unread body, the next request on the same connection is
    // still answered (async-h1 could swallow it).
    use std::io::{BufRead, BufReader, Read, Write};
    let hub = FakeHub::with_default_repo();
    let hive = Hive::spawn(&hub);
    let host = hive.url().trim_start_matches("http://").to_owned();
    let mut conn = std::net::TcpStream::connect(&host).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    for (method, path, body, status) in [
        ("POST", "/health", "{\"ModelList\":{}}", 405),
        ("PUT", "/v1/jobs", "{}", 405),
        ("POST", "/v1/jobs", "{nope", 400),
        ("GET", "/v1/jobs/job-x", "", 404),
        ("GET", "/health", "", 200),
    ] {
        // POSTs are JSON (the hive refuses anything else with 415, see hostile.rs).
        let json = if method == "POST" { "Content-Type: application/json\r\n" } else { "" };
        let head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{json}Content-Length: {}\r\n\r\n", body.len());
        conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(body.as_bytes())).expect("write");
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        assert!(line.contains(&format!(" {status} ")), "{method} {path}: {line:?}");
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).expect("header");
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
        }
        let mut buf = vec![0; len];
        reader.read_exact(&mut buf).expect("body");
    }
}
