//! Every keeper request to a hive has a deadline: against a listener that accepts connections and
//! never answers, every command fails within 15 s, saying that nothing answered; a hive whose job
//! stream falls silent and that no longer answers is reported lost.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::Keeper;

/// A listener that accepts every connection, reads nothing and never answers.
struct Silent {
    url: String,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                keep.lock().expect("held").push(conn);
            }
        });
        Self { url, _held: held }
    }
}

const COMMANDS: &[&[&str]] = &[
    &["model", "download", "rbee-test/tiny-model", "model.gguf"],
    &["model", "list"],
    &["model", "get", "rbee-test/tiny-model"],
    &["model", "delete", "rbee-test/tiny-model"],
    &["model", "verify"],
    &["job", "list"],
    &["job", "status", "job-1"],
    &["job", "cancel", "job-1"],
    &["job", "attach", "job-1"],
    &["hive", "status"],
];

#[test]
fn every_command_gives_up_on_a_silent_hive_within_15s() {
    let silent = Silent::start();
    let runs: Vec<_> = COMMANDS
        .iter()
        .map(|args| {
            let started = Instant::now();
            (args, started, Keeper::new().args(["--hive", &silent.url]).args(args.iter().copied()).spawn())
        })
        .collect();
    for (args, started, run) in runs {
        let out = run.wait_timeout(Duration::from_secs(30));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(15), "`rbee {}` took {took:?}\n{}", args.join(" "), out.dump());
        out.assert_code(2).assert_stderr_contains("accepts connections but sent no answer within 5s");
    }
}

/// A "hive" that takes a job, opens its stream with one event, then says nothing more and answers
/// no other request.
fn falls_silent(listener: &TcpListener, held: &Arc<Mutex<Vec<TcpStream>>>) {
    for mut conn in listener.incoming().flatten() {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let reply = if head.starts_with("POST /v1/jobs ") {
            let length = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<u64>().ok())?
            });
            let _ = std::io::copy(&mut (&conn).take(length.unwrap_or(0)), &mut std::io::sink());
            let body = r#"{"job_id":"job-1","sse_url":"/v1/jobs/job-1/stream"}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            continue; // closed: the stream comes on a new connection
        } else if head.starts_with("GET /v1/jobs/job-1/stream ") {
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nevent:\nid:1\ndata:hello\n\n".to_owned()
        } else {
            String::new()
        };
        let _ = conn.write_all(reply.as_bytes());
        held.lock().expect("held").push(conn);
    }
}

#[test]
fn a_silent_stream_of_a_hive_that_no_longer_answers_is_a_lost_hive() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || falls_silent(&listener, &keep));
    let started = Instant::now();
    let out = Keeper::new().args(["--hive", &url, "model", "download", "rbee-test/tiny-model", "model.gguf"]).run();
    let took = started.elapsed();
    out.assert_code(2)
        .assert_stderr_contains("lost the hive: job job-1's stream sent nothing for 30s")
        .assert_stderr_contains("no answer within 5s");
    // 30 s of silence, then the status check's 5 s; never the hours a download may take.
    assert!((Duration::from_secs(30)..Duration::from_secs(50)).contains(&took), "took {took:?}\n{}", out.dump());
}
