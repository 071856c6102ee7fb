//! Retries: a reset or a stall mid-body is resumed from the last byte received (with `Range`),
//! bounded by `--retries`; past that the job fails cleanly, keeping its partial for later.

use rbee_protocol::Event;

use rbee_tests::hub::Connection;

use crate::harness::fixtures::{
    assert_not_published, assert_published, file_len, hub_with_faulty_model, incomplete, keeper_download,
    keeper_job_id, range_start, wait_status, MODEL, REPO,
};
use crate::harness::{CloseReason, FakeHub, Fault, Hive, HiveBuilder, TIMEOUT};

const SIZE: u64 = 4 << 20;

fn hive_builder(hub: &FakeHub) -> HiveBuilder {
    Hive::builder().hub(hub).arg("--retry-backoff-ms").arg("50")
}

/// Run a download of [`MODEL`] to its terminal event; returns (job id, events).
fn download(hive: &Hive) -> (String, Vec<Event>) {
    let id = hive.start_download(REPO, MODEL);
    let frames = hive.sse(&id).until_terminal(3 * TIMEOUT);
    (id, frames.into_iter().map(|f| f.event).collect())
}

fn narration_with<'a>(events: &'a [Event], needle: &str) -> Option<&'a str> {
    events.iter().find_map(|e| match e {
        Event::Narration { message } if message.contains(needle) => Some(message.as_str()),
        _ => None,
    })
}

/// The second connection resumed where the first stopped (`after` its `n`th byte) and fetched
/// the rest; the job completed and its file is published.
#[track_caller]
fn assert_resumed(hive: &Hive, hub: &FakeHub, id: &str, (n, after): (u64, &str)) -> Vec<Connection> {
    let conns = hub.connections();
    assert_eq!(conns.len(), 2, "{conns:#?}");
    let k = range_start(conns[1].range.as_deref());
    assert!(k > 0 && k <= n, "resumed at {k}, after {after} at {n}");
    assert_eq!(conns[1].bytes_sent, SIZE - k);
    wait_status(hive, id, "completed");
    assert_published(hive, hub, MODEL);
    conns
}

#[test]
fn a_reset_is_retried_from_the_last_byte() {
    let n = 1 << 20;
    let hub = hub_with_faulty_model(SIZE, 8 << 20, Fault::ResetAfter(n), 1);
    let hive = hive_builder(&hub).spawn();
    let (id, events) = download(&hive);
    assert!(matches!(events.last(), Some(Event::Done { .. })), "{events:#?}");
    assert!(narration_with(&events, "retry").is_some(), "no retry narration: {events:#?}");
    assert!(hub.wait_all_closed(TIMEOUT));
    let conns = assert_resumed(&hive, &hub, &id, (n, "a reset"));
    assert_eq!(conns[0].close, Some(CloseReason::Reset));
    assert_eq!(conns[1].status, Some(206));
}

#[test]
fn a_stall_is_retried() {
    let n = 1 << 20;
    let hub = hub_with_faulty_model(SIZE, 0, Fault::StallAfter(n), 1);
    let hive = hive_builder(&hub).stall_secs(1).spawn();
    let (id, events) = download(&hive);
    assert!(matches!(events.last(), Some(Event::Done { .. })), "{events:#?}");
    let retry = narration_with(&events, "retry").unwrap_or_else(|| panic!("no retry narration: {events:#?}"));
    assert!(retry.contains("stall"), "the retry does not say why: {retry}");
    // (Whether the stalled connection closes is `cancel::a_stalled_upstream_connection_closes_on_cancel`.)
    assert!(hub.wait_closed(1, TIMEOUT).is_some());
    let conns = assert_resumed(&hive, &hub, &id, (n, "a stall"));
    assert_eq!(conns[0].bytes_sent, n, "{conns:#?}");
}

#[test]
fn resets_beyond_the_retry_budget_fail_cleanly_and_keep_the_partial() {
    let n = 512 << 10;
    let hub = hub_with_faulty_model(SIZE, 8 << 20, Fault::ResetAfter(n), 10);
    let hive = hive_builder(&hub).retries(2).spawn();
    let keeper = keeper_download(&hive, MODEL).spawn();
    let id = keeper_job_id(&keeper);
    let out = keeper.wait();
    out.assert_code(1);
    out.assert_stderr_contains("gave up after 3 attempts");
    let info = wait_status(&hive, &id, "failed");
    assert!(info["error"].as_str().is_some_and(|e| e.contains("gave up after 3 attempts")), "{info}");
    assert!(hub.wait_all_closed(TIMEOUT));
    let conns = hub.connections();
    assert_eq!(conns.len(), 3, "1 attempt + 2 retries: {conns:#?}");
    assert!(conns.iter().all(|c| c.close == Some(CloseReason::Reset)), "{conns:#?}");
    assert_not_published(&hive, &hub, MODEL);
    let kept = file_len(&incomplete(&hive, &hub, MODEL));
    let last_start = range_start(conns[2].range.as_deref());
    assert!(last_start > 0 && kept >= last_start && kept <= 3 * n, "partial of {kept} bytes: {conns:#?}");

    // The partial is what the next download resumes from.
    hub.clear_faults();
    let (_, events) = download(&hive);
    assert!(matches!(events.last(), Some(Event::Done { .. })), "{events:#?}");
    assert!(hub.wait_all_closed(TIMEOUT));
    let conns = hub.connections();
    assert_eq!(range_start(conns[3].range.as_deref()), kept);
    assert_eq!(conns[3].bytes_sent, SIZE - kept);
    assert_published(&hive, &hub, MODEL);
}
