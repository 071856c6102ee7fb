//! Issue 24 §3: no request makes the hive panic. Every path segment of every route is replaced by
//! non-ASCII and control bytes (raw, and percent-encoded so they reach the handlers), sent with
//! every method over raw TCP; each request gets an HTTP answer and the hive log has no panic.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::fixtures::{hub_with_model, wait_status, REPO};
use crate::harness::Hive;

/// Every route's path, with one sample for each parameter.
const ROUTES: &[&str] = &[
    "/health",
    "/v1/jobs",
    "/v1/jobs/job-1",
    "/v1/jobs/job-1/stream",
    "/v1/models",
    "/v1/models/rbee-test/tiny-model",
    "/v1/models/tiny-model",
    "/v1/shutdown",
    "/hf/rbee-test/tiny-model/resolve/main/config.json",
    "/hf/api/models/rbee-test/tiny-model/revision/main",
    "/hf/api/models/rbee-test/tiny-model",
    "/hf/api/models/rbee-test/tiny-model/tree/main",
    "/v1/events",
    "/v1/hive",
    "/page.js",
    "/page.css",
];

/// What each segment is replaced by: raw bytes (the hive answers 400 before any route) and
/// percent-encoded ones (which reach the route, the mirror's error headers included).
const EVIL: &[&[u8]] = &[
    b"\xc3\xa9",
    b"\xff\xfe",
    b"a\x01b",
    b"\x1b[31m",
    b"\x7f",
    b"%C3%A9.bin",
    b"%FF",
    b"%00",
    b"%0D%0AX-Evil:%201",
    b"%1B%5B31mRED%1B%5B0m",
    b"%E2%80%AE",
    b"%1B%5D0%3Btitle%07",
];

/// Sends `request` on a fresh connection; the status of the answer (0 when there is none).
fn status_of(addr: &str, request: &[u8]) -> u16 {
    let mut conn = TcpStream::connect(addr).expect("connect to the hive");
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    if conn.write_all(request).is_err() {
        return 0;
    }
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ").and_then(|s| s.get(..3)).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn requests(addr: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for route in ROUTES {
        let segments: Vec<&str> = route.trim_start_matches('/').split('/').collect();
        for i in 0..segments.len() {
            for evil in EVIL {
                let mut path = Vec::new();
                for (j, seg) in segments.iter().enumerate() {
                    path.push(b'/');
                    path.extend_from_slice(if i == j { evil } else { seg.as_bytes() });
                }
                for method in ["GET", "HEAD", "DELETE", "POST"] {
                    let mut req = format!("{method} ").into_bytes();
                    req.extend_from_slice(&path);
                    req.extend_from_slice(format!(" HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").as_bytes());
                    if method == "POST" {
                        req.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
                    } else {
                        req.extend_from_slice(b"\r\n");
                    }
                    out.push((format!("{method} {}", String::from_utf8_lossy(&path).escape_debug()), req));
                }
            }
        }
    }
    // Header values too: async-h1 panics on a value that is UTF-8 but not ASCII.
    for value in [&b"\xc3\xa9"[..], b"\xff", b"\x1b[31m", b"a\x7fb"] {
        let mut req = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Name: ").into_bytes();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        out.push((format!("header {}", String::from_utf8_lossy(value).escape_debug()), req));
    }
    out
}

/// Asks every request of a hive whose cache holds [`REPO`] (so the mirror finds the repo and
/// answers "no such file" with the file's name in `X-Error-Message`).
fn every_request_is_answered(hive: &Hive) {
    let id = hive.start_download(REPO, "config.json");
    wait_status(hive, &id, "completed");
    let addr = hive.url().trim_start_matches("http://").to_owned();
    let mut silent = Vec::new();
    for (what, req) in requests(&addr) {
        let status = status_of(&addr, &req);
        if !(200..600).contains(&status) || status == 500 {
            silent.push(format!("{what} → {status}"));
        }
    }
    assert!(
        silent.is_empty(),
        "requests without a fitting HTTP answer:\n{}\nhive log:\n{}",
        silent.join("\n"),
        hive.log()
    );
    assert!(!hive.log().contains("panicked"), "the hive panicked:\n{}", hive.log());
    assert_eq!(crate::harness::http::get(&format!("{}/health", hive.url())).status, 200, "the hive still answers");
}

#[test]
fn non_ascii_and_control_bytes_in_every_segment_of_every_route_get_an_answer() {
    let hub = hub_with_model(64 << 10);
    every_request_is_answered(&Hive::spawn(&hub));
}

#[test]
fn the_pulling_mirror_answers_them_too() {
    let hub = hub_with_model(64 << 10);
    every_request_is_answered(&Hive::builder().hub(&hub).arg("--mirror-upstream").spawn());
}
