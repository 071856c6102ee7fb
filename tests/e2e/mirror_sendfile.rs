//! Issue 27 §6, "The mirror keeps its promise": the mirror sends a published blob's bytes with
//! `sendfile(2)` (the hive reads none of them itself), and they are the file's exact bytes for a
//! whole `GET`, a `Range` and a suffix range, with a `HEAD` among them on one keep-alive
//! connection; a client that goes away stops the transfer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::fixtures::{cached_model, etag, MODEL, REPO};
use crate::harness::strace::Strace;
use crate::harness::{http, Hive, TIMEOUT};

/// One response read off a connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads `methods.len()` responses (bodies framed by `Content-Length`; none for a `HEAD`) from
/// `bytes`, everything the hive wrote on one connection.
#[track_caller]
fn split(mut bytes: &[u8], methods: &[&str]) -> Vec<Answer> {
    let mut out = Vec::new();
    for method in methods {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let status = head[9..12].parse().expect("status");
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .expect("content-length");
        let body_len = if *method == "HEAD" { 0 } else { len };
        assert!(bytes.len() >= end + body_len, "a body cut short: {head}");
        out.push(Answer { status, head, body: bytes[end..end + body_len].to_vec() });
        bytes = &bytes[end + body_len..];
    }
    assert!(bytes.is_empty(), "{} bytes after the last response", bytes.len());
    out
}

/// The sum of the results of every `sendfile` in `trace`.
fn sent_by_sendfile(trace: &str) -> u64 {
    trace
        .lines()
        .filter(|l| l.contains("sendfile"))
        .filter_map(|l| l.rsplit_once(" = ")?.1.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn blob_bytes_go_out_with_sendfile_exact_for_get_range_and_head() {
    let size: u64 = (3 << 20) + 4321;
    let (hub, hive) = cached_model(size);
    let want = hub.file_bytes(REPO, MODEL);
    let tracer = Strace::attach(hive.pid(), &["sendfile", "pread64", "read"], "the sendfile trace test");
    let host = hive.url().trim_start_matches("http://").to_owned();
    let path = format!("/hf/{REPO}/resolve/main/{MODEL}");
    let ask = |method: &str, extra: &str| format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
    let asks = [
        ask("GET", ""),
        ask("GET", "Range: bytes=1000-1999\r\n"),
        ask("HEAD", ""),
        ask("GET", "Range: bytes=-10\r\nConnection: close\r\n"),
    ];
    let mut conn = TcpStream::connect(&host).expect("connect to the hive");
    conn.set_read_timeout(Some(3 * TIMEOUT)).expect("read timeout");
    conn.write_all(asks.concat().as_bytes()).expect("write");
    let mut bytes = Vec::new();
    conn.read_to_end(&mut bytes).expect("read until the hive closes");
    let answers = split(&bytes, &["GET", "GET", "HEAD", "GET"]);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 206, 200, 206], "{answers:#?}");
    assert!(answers[0].body == want, "the whole GET differs from the file");
    assert_eq!(answers[1].body, want[1000..2000]);
    assert!(answers[1].head.contains(&format!("content-range: bytes 1000-1999/{size}")), "{}", answers[1].head);
    assert!(answers[2].head.contains(&format!("content-length: {size}")), "{}", answers[2].head);
    assert!(answers[2].head.contains(&format!("x-linked-size: {size}")), "{}", answers[2].head);
    assert_eq!(answers[3].body, want[want.len() - 10..]);
    let Some(tracer) = tracer else { return };
    let trace = tracer.finish();
    // Every body byte went out through sendfile, and the hive read none of the blob itself.
    assert_eq!(sent_by_sendfile(&trace), size + 1000 + 10, "the trace:\n{trace}");
    let blob = format!("/blobs/{}>", etag(&hub, MODEL));
    let read = trace.lines().find(|l| l.contains(&blob) && !l.contains("sendfile"));
    assert!(read.is_none(), "the hive read the blob itself: {read:?}");
}

/// The bytes the hive has written (`wchar` of /proc/<pid>/io counts `sendfile` too).
fn written(hive: &Hive) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{}/io", hive.pid())).expect("/proc/<pid>/io");
    io.lines().find_map(|l| l.strip_prefix("wchar: ")?.parse().ok()).expect("wchar")
}

#[test]
fn a_client_that_goes_away_stops_the_transfer() {
    let size: u64 = 64 << 20;
    let (_hub, hive) = cached_model(size);
    let before = written(&hive);
    let url = format!("{}/hf/{REPO}/resolve/main/{MODEL}", hive.url());
    let mut res = http::open("GET", &url, &[], None).expect("GET");
    assert_eq!(res.status, 200);
    let mut first = vec![0; 1 << 20];
    res.body.read_exact(&mut first).expect("the first MiB");
    let _ = res.conn.shutdown(std::net::Shutdown::Both);
    drop(res);
    // The hive stops writing at once (what the socket buffers held is all it wrote after).
    let mut last = written(&hive);
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = written(&hive);
        if now == last {
            break;
        }
        assert!(started.elapsed() < TIMEOUT, "still writing {} s after the client left", TIMEOUT.as_secs());
        last = now;
    }
    let sent = last - before;
    assert!(sent < size / 4, "the hive wrote {sent} of {size} bytes to a client that left after 1 MiB");
    assert_eq!(http::get(&format!("{}/health", hive.url())).status, 200);
}
