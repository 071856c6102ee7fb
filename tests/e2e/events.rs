//! `GET /v1/events`: every job's events on one stream, numbered hive-wide, resumed after a cursor
//! (`Last-Event-ID`, or `?last_event_id=` where a header cannot be sent), or started from a snapshot
//! of the job table; no event is sent twice.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::fixtures::{cached_model, REPO};
use crate::harness::http::{open, request};
use crate::harness::Hive;

/// One frame: (event, id, data as JSON).
type Frame = (String, u64, Value);

/// Reads `/v1/events{query}` until `enough` holds for the frames so far (at most 20 s).
#[track_caller]
fn read(hive: &Hive, query: &str, headers: &[(&str, &str)], enough: impl Fn(&[Frame]) -> bool) -> Vec<Frame> {
    let url = format!("{}/v1/events{query}", hive.url().trim_end_matches('/'));
    let mut s = open("GET", &url, headers, None).expect("GET /v1/events");
    assert_eq!(s.status, 200, "{url}");
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    s.conn.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let (mut text, mut frames) = (String::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !enough(&frames) {
        assert!(Instant::now() < deadline, "{url}: not enough frames within 20 s: {frames:#?}");
        let mut buf = [0; 65536];
        match s.body.read(&mut buf) {
            Ok(0) => panic!("{url}: the stream ended"),
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => continue,
        }
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name)).unwrap_or("").to_owned();
            let id = field("id:").parse().expect("every frame has an id");
            frames.push((field("event:"), id, serde_json::from_str(&field("data:")).expect("JSON data")));
        }
    }
    frames
}

fn ends_job(id: &str) -> impl Fn(&[Frame]) -> bool + '_ {
    move |f: &[Frame]| f.iter().any(|(e, _, d)| e == "done" && d["job_id"] == id)
}

#[test]
fn one_stream_for_every_job_resumes_after_its_cursor_without_duplicates() {
    let (_hub, hive) = cached_model(64 << 10);
    let old = hive.get("/v1/jobs").1[0]["job_id"].as_str().unwrap().to_owned();

    // No cursor: a snapshot first, holding the finished job with its last state.
    let first = read(&hive, "", &[], |f| !f.is_empty());
    let (event, head, snapshot) = &first[0];
    assert_eq!(event, "snapshot");
    assert!(*head >= 3, "job, narration…, done of the first job: head {head}");
    let job = &snapshot["jobs"][0];
    assert_eq!((job["job_id"].as_str(), job["status"].as_str()), (Some(old.as_str()), Some("completed")));
    assert!(job["events"].as_array().unwrap().iter().any(|e| e["kind"] == "done"), "{job}");

    // After the cursor: the next job from its `job` frame to its `done`, every frame once.
    let id = hive.start_download(REPO, "config.json");
    let live = read(&hive, &format!("?last_event_id={head}"), &[], ends_job(&id));
    let ids: Vec<u64> = live.iter().map(|f| f.1).collect();
    assert_eq!(ids, (head + 1..=head + live.len() as u64).collect::<Vec<_>>(), "consecutive ids after the cursor");
    assert_eq!((live[0].0.as_str(), live[0].2["job_id"].as_str()), ("job", Some(id.as_str())));
    assert!(live.iter().all(|f| f.2["job_id"] == id.as_str()), "only the new job's events: {live:#?}");
    let seqs: Vec<u64> = live.iter().map(|f| f.2["job_seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..live.len() as u64).collect::<Vec<_>>(), "the job's own log, in order");

    // `Last-Event-ID` (what EventSource sends on reconnect) wins over the query.
    let next = read(&hive, "?last_event_id=0", &[("Last-Event-ID", &(head + 1).to_string())], ends_job(&id));
    assert_eq!(next[0].1, head + 2);
    assert_eq!(next.len(), live.len() - 1);

    // A cursor the hive never handed out (an earlier run): a snapshot, then only what it lacks.
    let fresh = read(&hive, "?last_event_id=999999", &[], |f| !f.is_empty());
    assert_eq!(fresh[0].0, "snapshot");
    assert_eq!(fresh[0].1, head + live.len() as u64);
    assert_eq!(fresh[0].2["jobs"].as_array().map(Vec::len), Some(2));

    for bad in ["?last_event_id=abc", "?last_event_id=1&last_event_id=2", "?since=1"] {
        let url = format!("{}/v1/events{bad}", hive.url().trim_end_matches('/'));
        let res = request("GET", &url, &[], None).expect("GET");
        assert_eq!(res.status, 400, "{bad}");
        assert_eq!(res.json()["error"], "invalid_query", "{bad}");
    }
}
