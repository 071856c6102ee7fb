//! Issue 24 §6: the accept loop is strict where laxness lets one request hide in another, and it
//! never drops a pipelined request. Raw TCP, since no client library sends these heads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::fixtures::hub_with_model;
use crate::harness::Hive;

/// Writes `bytes` on a fresh connection and reads until the hive closes it (or 30 s pass).
fn exchange(hive: &Hive, bytes: &str) -> String {
    let mut conn = TcpStream::connect(hive.url().trim_start_matches("http://")).expect("connect to the hive");
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    conn.write_all(bytes.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ").filter_map(|(i, _)| text[i + 9..].get(..3)?.parse().ok()).collect()
}

#[test]
fn ambiguous_heads_get_400_and_nothing_hidden_in_them_is_run() {
    let hub = hub_with_model(64 << 10);
    let hive = Hive::spawn(&hub);
    let host = hive.url().trim_start_matches("http://").to_owned();
    // Each head hides a second request (a POST that would start a job) where a lax parser reads
    // a body, or no body, or another host.
    let job = r#"{"operation":"model_download","hive_id":"localhost","model":"rbee-test/tiny-model:config.json"}"#;
    let smuggled = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{job}",
        job.len()
    );
    let cases = [
        format!("POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}", smuggled.len()),
        format!("POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: +2\r\n\r\n{{}}{smuggled}"),
        format!("POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: identity\r\n\r\n{smuggled}"),
        format!("POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: xchunked\r\n\r\n{smuggled}"),
        format!("POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n{smuggled}"),
        format!("GET /v1/models HTTP/1.1\r\nHost: evil.example\r\nHost: {host}\r\n\r\n{smuggled}"),
        format!("GET /v1/models HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\n\r\n{smuggled}"),
        format!("POST http://evil.example/v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}{smuggled}"),
    ];
    for case in &cases {
        let answer = exchange(&hive, case);
        assert_eq!(statuses(&answer), [400], "{case:?} got:\n{answer}");
        assert!(answer.contains("\"bad_request\"") || answer.contains("\"error\""), "not JSON: {answer}");
    }
    let (_, jobs) = hive.get("/v1/jobs");
    assert_eq!(jobs.as_array().map(Vec::len), Some(0), "a hidden request ran: {jobs}\nhive log:\n{}", hive.log());
}

#[test]
fn pipelined_requests_are_all_answered() {
    let hub = hub_with_model(64 << 10);
    let hive = Hive::spawn(&hub);
    let host = hive.url().trim_start_matches("http://").to_owned();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let post = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{{nop}}"
    );
    let last = format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let all = [get("/health"), get("/v1/models"), post, get("/v1/jobs/job-none"), last].concat();
    let answer = exchange(&hive, &all);
    assert_eq!(statuses(&answer), [200, 200, 400, 404, 200], "got:\n{answer}");
}

#[test]
fn a_chunked_request_is_answered_then_the_connection_closed() {
    let hub = hub_with_model(64 << 10);
    let hive = Hive::spawn(&hub);
    let host = hive.url().trim_start_matches("http://").to_owned();
    let chunked = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\n{{nop}}\r\n0\r\n\r\n"
    );
    let started = std::time::Instant::now();
    let answer = exchange(&hive, &chunked);
    // Closed at once, not after the request deadline (10 s) of a drain of the body.
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    assert_eq!(statuses(&answer), [400], "got:\n{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "no `Connection: close`:\n{answer}");
}
