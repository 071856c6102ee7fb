//! One download per blob: concurrent jobs for the same file — on one hive, or on two hives sharing
//! a cache — never write the same `.incomplete` at once. The hub sees one CDN connection for the
//! file at a time; the second job waits and then reuses (or resumes) the first one's work. Both
//! end with the verified file, and cancelling one of them does not break the other.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rbee_protocol::Event;
use sha2::{Digest, Sha256};

use crate::harness::{FakeHub, Hive, HubConfig, RepoSpec, SseStream, TIMEOUT};

const REPO: &str = "rbee-test/tiny-model";
const FILE: &str = "model.gguf";
const SIZE: u64 = 2 << 20;
/// CDN bytes/s per connection while jobs line up: a download would take half a minute, so the
/// second job surely arrives while the first one runs; tests then `set_rate(0)` to let it finish.
const CRAWL: u64 = 64 << 10;

fn throttled_hub() -> FakeHub {
    let hub = FakeHub::start(HubConfig { rate: CRAWL, ..HubConfig::default() });
    hub.add_repo(RepoSpec::demo(REPO, SIZE));
    hub
}

/// Waits for the job's terminal event; returns the `Done` path (panics otherwise).
#[track_caller]
fn done_path(hive: &Hive, sse: &mut SseStream) -> PathBuf {
    let frames = sse.until_terminal(4 * TIMEOUT);
    match &frames.last().expect("terminal").event {
        Event::Done { path: Some(p), .. } => PathBuf::from(p),
        other => panic!("expected done with a path, got {other:?}\nframes: {frames:#?}\nhive log:\n{}", hive.log()),
    }
}

/// The job narrated that another job is downloading the blob.
#[track_caller]
fn wait_until_waiting(sse: &mut SseStream) {
    sse.until(TIMEOUT, |f| matches!(&f.event, Event::Narration { message } if message.contains("another job")));
}

#[track_caller]
fn assert_verified(hub: &FakeHub, path: &PathBuf) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(hex::encode(Sha256::digest(&bytes)), hub.sha256(REPO, FILE), "content of {}", path.display());
}

/// CDN connections for [`FILE`] never overlap: each opened after the previous one closed.
#[track_caller]
fn assert_one_connection_at_a_time(hub: &FakeHub) {
    assert!(hub.wait_all_closed(TIMEOUT), "CDN connections still open");
    let conns: Vec<_> = hub.connections().into_iter().filter(|c| c.file.as_deref() == Some(FILE)).collect();
    for pair in conns.windows(2) {
        let closed = pair[0].closed_at.expect("closed");
        assert!(
            pair[1].opened_at >= closed,
            "CDN connections {} and {} overlapped: {conns:#?}",
            pair[0].id,
            pair[1].id
        );
    }
}

/// Two jobs for the same file: the first on `a` starts downloading, then the second on `b` (the
/// same hive or one sharing its cache) is submitted and reports that it waits for the first.
struct Pair {
    first: String,
    first_sse: SseStream,
    second: String,
    second_sse: SseStream,
}

fn start_pair(hub: &FakeHub, a: &Hive, b: &Hive) -> Pair {
    let first = a.start_download(REPO, FILE);
    let first_sse = a.sse(&first);
    assert!(hub.wait_for_bytes(1, TIMEOUT), "first download never started");
    let second = b.start_download(REPO, FILE);
    let mut second_sse = b.sse(&second);
    wait_until_waiting(&mut second_sse);
    Pair { first, first_sse, second, second_sse }
}

#[test]
fn two_jobs_on_one_hive_share_one_download() {
    let hub = throttled_hub();
    let hive = Hive::spawn(&hub);
    let Pair { mut first_sse, mut second_sse, .. } = start_pair(&hub, &hive, &hive);
    hub.set_rate(0);
    let (a, b) = (done_path(&hive, &mut first_sse), done_path(&hive, &mut second_sse));
    assert_eq!(a, b, "both jobs publish the same snapshot file");
    assert_verified(&hub, &a);
    assert_one_connection_at_a_time(&hub);
    let stats = hub.stats();
    assert_eq!(stats.connections.len(), 1, "the second job reused the first one's blob: {:#?}", stats.connections);
    assert_eq!(stats.cdn_bytes, SIZE);
}

#[test]
fn two_hives_sharing_a_cache_share_one_download() {
    let hub = throttled_hub();
    let one = Hive::spawn(&hub);
    let two = Hive::builder().hub(&hub).share_cache(&one).spawn();
    let Pair { mut first_sse, mut second_sse, .. } = start_pair(&hub, &one, &two);
    hub.set_rate(0);
    let (a, b) = (done_path(&one, &mut first_sse), done_path(&two, &mut second_sse));
    assert_eq!(a, b);
    assert_verified(&hub, &a);
    assert_one_connection_at_a_time(&hub);
    assert_eq!(hub.stats().connections.len(), 1, "the second hive reused the first one's blob");
    assert_eq!(hub.stats().cdn_bytes, SIZE);
}

#[track_caller]
fn cancel(hive: &Hive, id: &str) {
    let (status, body) = hive.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 200, "DELETE /v1/jobs/{id}: {body}\nhive log:\n{}", hive.log());
}

#[track_caller]
fn assert_cancelled(hive: &Hive, sse: &mut SseStream) {
    let frames = sse.until_terminal(TIMEOUT);
    let end = &frames.last().expect("terminal").event;
    assert!(matches!(end, Event::Cancelled { .. }), "expected cancelled, got {end:?}\nhive log:\n{}", hive.log());
}

#[test]
fn cancelling_the_waiting_job_leaves_the_download_running() {
    let hub = throttled_hub();
    let hive = Hive::spawn(&hub);
    let Pair { mut first_sse, second, mut second_sse, .. } = start_pair(&hub, &hive, &hive);
    cancel(&hive, &second);
    assert_cancelled(&hive, &mut second_sse);
    hub.set_rate(0);
    assert_verified(&hub, &done_path(&hive, &mut first_sse));
    assert_one_connection_at_a_time(&hub);
    assert_eq!(hub.stats().connections.len(), 1);
}

#[test]
fn cancelling_the_downloading_job_hands_the_blob_to_the_waiting_one() {
    let hub = throttled_hub();
    let hive = Hive::spawn(&hub);
    let Pair { first, mut first_sse, mut second_sse, .. } = start_pair(&hub, &hive, &hive);
    // Let some bytes reach the partial on disk, slow down again, and cancel the downloader.
    let partial = hive.repo_dir(REPO).join("blobs").join(format!("{}.incomplete", hub.sha256(REPO, FILE)));
    hub.set_rate(1 << 20);
    let deadline = Instant::now() + 3 * TIMEOUT;
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "nothing reached {}\n{}", partial.display(), hive.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    hub.set_rate(CRAWL);
    cancel(&hive, &first);
    assert_cancelled(&hive, &mut first_sse);
    hub.set_rate(0);
    let path = done_path(&hive, &mut second_sse);
    assert_verified(&hub, &path);
    assert!(hub.wait_all_closed(TIMEOUT));
    let conns = hub.connections();
    assert_eq!(conns.len(), 2, "one connection per job: {conns:#?}");
    let range = conns[1].range.as_deref().unwrap_or_else(|| panic!("the waiting job did not resume: {conns:#?}"));
    let from: u64 = range.trim_start_matches("bytes=").trim_end_matches('-').parse().expect("bytes=N-");
    assert!(from > 0 && from <= conns[0].bytes_sent, "resumed at {from}, first sent {}", conns[0].bytes_sent);
    assert_eq!(conns[1].bytes_sent, SIZE - from, "the rest, and only the rest");
    // Nothing was left behind for a second writer to find.
    let blobs = hive.repo_dir(REPO).join("blobs");
    let partials: Vec<_> = std::fs::read_dir(&blobs)
        .expect("blobs")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        .collect();
    assert!(partials.is_empty(), "partials left: {partials:?}");
}

#[test]
fn a_failed_first_download_does_not_fail_the_waiting_job() {
    let hub = throttled_hub();
    hub.set_fault(FILE, crate::harness::Fault::WrongBytes, 1);
    let hive = Hive::spawn(&hub);
    let Pair { mut first_sse, mut second_sse, .. } = start_pair(&hub, &hive, &hive);
    hub.set_rate(0);
    let frames = first_sse.until_terminal(3 * TIMEOUT);
    let end = &frames.last().expect("terminal").event;
    assert!(matches!(end, Event::Error { message } if message.contains("sha256 mismatch")), "{end:?}");
    // The corrupt partial was thrown away; the waiting job starts over and gets the right bytes.
    assert_verified(&hub, &done_path(&hive, &mut second_sse));
    assert_one_connection_at_a_time(&hub);
    let conns = hub.connections();
    assert_eq!(conns.len(), 2, "{conns:#?}");
    assert_eq!(conns[1].range, None, "nothing of the corrupt download may be resumed");
}
