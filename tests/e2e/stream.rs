//! The job outlives its SSE subscribers: a client that disconnects does not stop the download,
//! and a new subscription replays the log in full, or only after `Last-Event-ID`; one that left
//! is no error in the hive's log.

use rbee_protocol::sse::Frame;
use rbee_protocol::Event;

use crate::harness::fixtures::{assert_published, hub_with_model, job, wait_status, MODEL, REPO};
use crate::harness::{Hive, SseStream, TIMEOUT};

fn ids(frames: &[Frame]) -> Vec<u64> {
    frames.iter().map(|f| f.id.expect("every frame has an id")).collect()
}

#[test]
fn a_job_survives_its_subscriber_and_replays_from_any_point() {
    let size = 12 << 20;
    let hub = hub_with_model(size);
    hub.set_rate(3 << 20);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let id = hive.start_download(REPO, MODEL);

    let mut first = hive.sse(&id);
    let head = first.until(TIMEOUT, |f| matches!(f.event, Event::Progress { .. }));
    let last_seen = *ids(&head).last().expect("frames");
    first.disconnect();

    // The download goes on without a subscriber.
    let sent = hub.stats().cdn_bytes;
    assert!(hub.wait_for_bytes(sent + (1 << 20), TIMEOUT), "bytes stopped after the client left");
    assert_eq!(job(&hive, &id)["status"], "running");

    // Reconnecting after `last_seen` continues exactly where the first subscriber stopped.
    let mut resumed = SseStream::connect(&hive, &id, Some(last_seen));
    assert_eq!(resumed.status, 200);
    assert!(resumed.content_type.as_deref().is_some_and(|t| t.starts_with("text/event-stream")));
    let tail = resumed.until_terminal(3 * TIMEOUT);
    let expected: Vec<_> = (last_seen + 1..=last_seen + tail.len() as u64).collect();
    assert_eq!(ids(&tail), expected, "ids after Last-Event-ID {last_seen}");
    assert!(matches!(tail.last().map(|f| &f.event), Some(Event::Done { .. })), "{tail:#?}");
    wait_status(&hive, &id, "completed");
    assert_published(&hive, &hub, MODEL);

    // A subscription without Last-Event-ID replays everything from id 1.
    let full = hive.sse(&id).until_terminal(TIMEOUT);
    let all: Vec<_> = (1..=full.len() as u64).collect();
    assert_eq!(ids(&full), all, "full replay ids");
    let seen: Vec<_> = head.iter().chain(&tail).cloned().collect();
    assert_eq!(full, seen, "the replay differs from what the two subscriptions saw");

    // From the middle of a finished job: only later ids, each once.
    let mid = full.len() as u64 / 2;
    let later = SseStream::connect(&hive, &id, Some(mid)).until_terminal(TIMEOUT);
    assert_eq!(later, full[mid as usize..], "replay after Last-Event-ID {mid}");
}

/// A subscriber that left is no error: the hive logs nothing with `{:?}`, so no backtrace is
/// resolved (the harness sets `RUST_BACKTRACE=1`; resolving one parses libc's debug info into
/// ~30 MiB the hive then keeps for good, BENCHMARKS.md 13c).
#[test]
fn a_subscriber_that_left_is_no_error() {
    let hub = hub_with_model(12 << 20);
    hub.set_rate(1 << 20);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let id = hive.start_download(REPO, MODEL);
    let mut first = hive.sse(&id);
    first.until(TIMEOUT, |f| matches!(f.event, Event::Progress { .. }));
    first.disconnect();
    // Progress goes on, then the end: the stream's sends fail (tide logs a failure at once).
    wait_status(&hive, &id, "completed");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = hive.log();
    assert!(!log.contains("SSE handler error") && !log.contains("backtrace"), "{log}");
}
