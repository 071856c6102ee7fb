//! Resume: a cancelled (or killed) download keeps its `.incomplete`, and the next download of the
//! same file asks for `Range: bytes=N-` and fetches only the rest; a server that ignores the
//! range makes it restart cleanly from zero. Either way the result verifies. These are the
//! one-stream resumes (`--max-parts 1`); resumes in parts are `parallel`'s.

use rbee_protocol::Event;

use crate::harness::fixtures::{
    assert_published, file_len, hub_with_model, incomplete, range_start, wait_for, wait_status, MODEL, REPO,
};
use crate::harness::{FakeHub, Fault, Hive, TIMEOUT};

const SIZE: u64 = 16 << 20;

/// A throttled hub, and a hive whose download of [`MODEL`] was cancelled with ≥ 2 MiB on disk;
/// returns the size of the `.incomplete` left.
fn cancelled_midway() -> (FakeHub, Hive, u64) {
    let hub = hub_with_model(SIZE);
    hub.set_rate(4 << 20);
    let hive = one_stream(&hub);
    let id = hive.start_download(REPO, MODEL);
    let part = incomplete(&hive, &hub, MODEL);
    wait_for(&hive, TIMEOUT, "2 MiB in the .incomplete", || file_len(&part) >= 2 << 20);
    let (status, body) = hive.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    assert!(hub.wait_closed(0, TIMEOUT).is_some(), "the first CDN connection stayed open");
    let kept = file_len(&part);
    assert!((2 << 20..SIZE).contains(&kept), "partial kept after cancel: {kept} bytes");
    hub.set_rate(0);
    (hub, hive, kept)
}

/// A hive fetching every file as one stream.
fn one_stream(hub: &FakeHub) -> Hive {
    Hive::builder().hub(hub).arg("--max-parts").arg("1").spawn()
}

/// Download [`MODEL`] again to completion; returns the job's events.
fn download_again(hive: &Hive) -> Vec<Event> {
    let id = hive.start_download(REPO, MODEL);
    let frames = hive.sse(&id).until_terminal(3 * TIMEOUT);
    wait_status(hive, &id, "completed");
    frames.into_iter().map(|f| f.event).collect()
}

fn narrated(events: &[Event], needle: &str) -> bool {
    events.iter().any(|e| matches!(e, Event::Narration { message } if message.contains(needle)))
}

#[test]
fn a_cancelled_download_resumes_with_range() {
    let (hub, hive, kept) = cancelled_midway();
    let events = download_again(&hive);
    assert!(hub.wait_closed(1, TIMEOUT).is_some(), "the second CDN connection never closed");
    let conns = hub.connections();
    assert_eq!(conns.len(), 2, "{conns:#?}");
    assert_eq!(range_start(conns[1].range.as_deref()), kept, "resume offset = size of the .incomplete");
    assert_eq!(conns[1].status, Some(206));
    assert_eq!(conns[1].bytes_sent, SIZE - kept, "only the missing bytes were fetched");
    assert!(narrated(&events, &format!("from byte {kept}")), "no resume narration: {events:#?}");
    let resumed = events.iter().find_map(|e| match e {
        Event::Progress { resumed_from, .. } => Some(*resumed_from),
        _ => None,
    });
    assert_eq!(resumed, Some(kept), "progress reports the resume offset");
    assert_published(&hive, &hub, MODEL);
}

#[test]
fn a_server_ignoring_range_restarts_from_zero() {
    let (hub, hive, kept) = cancelled_midway();
    hub.set_fault(MODEL, Fault::IgnoreRange, 1);
    let events = download_again(&hive);
    assert!(hub.wait_closed(1, TIMEOUT).is_some(), "the second CDN connection never closed");
    let conns = hub.connections();
    assert_eq!(conns.len(), 2, "{conns:#?}");
    assert_eq!(range_start(conns[1].range.as_deref()), kept);
    assert_eq!((conns[1].status, conns[1].bytes_sent), (Some(200), SIZE), "the whole file came again");
    assert!(narrated(&events, "ignored the Range"), "no narration of the restart: {events:#?}");
    assert_published(&hive, &hub, MODEL);
}

#[test]
fn a_download_resumes_after_the_hive_was_killed() {
    let hub = hub_with_model(SIZE);
    hub.set_rate(4 << 20);
    let mut hive = one_stream(&hub);
    hive.start_download(REPO, MODEL);
    let part = incomplete(&hive, &hub, MODEL);
    wait_for(&hive, TIMEOUT, "2 MiB in the .incomplete", || file_len(&part) >= 2 << 20);
    hive.restart();
    assert!(hub.wait_closed(0, TIMEOUT).is_some(), "the killed hive's connection stayed open");
    let kept = file_len(&part);
    assert!((2 << 20..SIZE).contains(&kept), "partial kept after kill: {kept} bytes");
    hub.set_rate(0);
    download_again(&hive);
    assert!(hub.wait_closed(1, TIMEOUT).is_some());
    let conns = hub.connections();
    assert_eq!(conns.len(), 2, "{conns:#?}");
    assert_eq!(range_start(conns[1].range.as_deref()), kept);
    assert_eq!(conns[1].bytes_sent, SIZE - kept);
    assert_published(&hive, &hub, MODEL);
}
