//! Ctrl+C on the keeper mid-download really stops the work on the hive: exit 130, the job is
//! cancelled, the upstream connection closes at once, the partial stops growing, and the job's
//! stream carries nothing after its `cancelled` event.

use std::time::{Duration, Instant};

use rbee_protocol::Event;

use crate::harness::fixtures::{
    assert_not_published, file_len, hub_with_model, incomplete, job, keeper_download, keeper_job_id, wait_for, MODEL,
    REPO,
};
use crate::harness::{Hive, SseStream, TIMEOUT};

/// The close of the CDN connection may lag the SIGINT (or the DELETE) by at most this much: the
/// keeper's own DELETE timeout, generous for a loaded 2-core machine, and still far below what the
/// rest of the throttled (or stalled) body would take.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

#[test]
fn sigint_mid_download_stops_the_job_on_the_hive() {
    let size = 48 << 20;
    let hub = hub_with_model(size);
    hub.set_rate(2 << 20);
    // One stream: the cancel of a download in parts is `parallel::a_cancel_closes_every_part`.
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).arg("--max-parts").arg("1").spawn();
    let keeper = keeper_download(&hive, MODEL).spawn();
    let id = keeper_job_id(&keeper);
    let mut live = SseStream::connect(&hive, &id, None);
    keeper.wait_for_stderr(TIMEOUT, |l| l.starts_with(&format!("⏳ {MODEL} ")));
    let part = incomplete(&hive, &hub, MODEL);
    wait_for(&hive, TIMEOUT, "1 MiB in the .incomplete", || file_len(&part) >= 1 << 20);
    let conn = hub.wait_for_connection(0, TIMEOUT).expect("a CDN connection");
    assert!(conn.closed_at.is_none(), "the download ended before the Ctrl+C: {conn:?}");

    let sigint = Instant::now();
    keeper.send_sigint();
    let out = keeper.wait();
    out.assert_code(130);
    let cancelling = out.stderr.find("🛑 Cancelling operation...");
    let cancelled = out.stderr.find("🛑 Operation cancelled by user");
    assert!(
        matches!((cancelling, cancelled), (Some(a), Some(b)) if a < b),
        "both cancel lines, in order\n{}",
        out.dump()
    );
    assert!(!out.stdout.contains('✅'), "a cancelled download printed a result\n{}", out.dump());

    let closed = hub.wait_closed(0, TIMEOUT).expect("the CDN connection was never closed");
    let lag = closed.saturating_duration_since(sigint);
    assert!(lag <= CLOSE_WITHIN, "CDN connection closed {lag:?} after SIGINT (limit {CLOSE_WITHIN:?})");
    let conn = &hub.connections()[0];
    assert!(
        conn.cancelled_mid_body() && conn.bytes_sent < size,
        "the hive must close the connection while the body is open, not let it finish: {conn:?}"
    );
    assert_eq!(job(&hive, &id)["status"], "cancelled");

    let len = file_len(&part);
    assert!((1 << 20..size).contains(&len), "the partial is kept for resume: {len} bytes");
    let cdn_bytes = hub.stats().cdn_bytes;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(file_len(&part), len, "the .incomplete grew after the keeper exited");
    let stats = hub.stats();
    assert_eq!((stats.cdn_bytes, stats.open_connections, stats.connections.len()), (cdn_bytes, 0, 1));
    assert_not_published(&hive, &hub, MODEL);

    // The live subscriber saw `cancelled` last, then nothing (heartbeats are every second).
    let frames = live.until_terminal(TIMEOUT);
    assert!(matches!(frames.last().map(|f| &f.event), Some(Event::Cancelled { .. })), "{frames:#?}");
    let late = live.collect_for(Duration::from_millis(2500));
    assert!(late.is_empty(), "events after `cancelled`: {late:#?}");

    // A replay holds the same: ids 1.., `cancelled` last (rbee's `[CANCELLED]` follows it as a
    // plain frame without an id), and nothing after it.
    let mut replay = SseStream::connect(&hive, &id, None);
    let all = replay.until_terminal(TIMEOUT);
    let ids: Vec<_> = all.iter().map(|f| f.id).collect();
    let expected: Vec<_> = (1..=all.len() as u64).map(Some).collect();
    assert_eq!(ids, expected, "replayed ids");
    assert!(all.iter().any(|f| matches!(f.event, Event::Progress { .. })), "no progress before the cancel");
    assert!(replay.collect_for(Duration::from_millis(300)).is_empty());
    assert_eq!(job(&hive, &id)["events"], all.len(), "the log grew after `cancelled`");
}

/// A cancel must close the upstream connection even when the upstream sends nothing (libcurl
/// alone would only notice the dropped body when the next byte arrives; hive/src/download/curl/
/// wakes its thread instead).
#[test]
fn a_stalled_upstream_connection_closes_on_cancel() {
    let hub = hub_with_model(4 << 20);
    hub.set_fault(MODEL, crate::harness::Fault::StallAfter(256 << 10), 1);
    let hive = Hive::builder().hub(&hub).stall_secs(60).spawn();
    let id = hive.start_download(REPO, MODEL);
    assert!(hub.wait_for_bytes(256 << 10, TIMEOUT), "the stall point was never reached");
    // Let the hive drain what was sent, so libcurl sits idle on the silent socket.
    std::thread::sleep(Duration::from_secs(1));
    let (status, body) = hive.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    let cancelled = Instant::now();
    let closed = hub.wait_closed(0, TIMEOUT).expect("the stalled upstream connection outlived the cancel");
    let lag = closed.saturating_duration_since(cancelled);
    assert!(lag <= CLOSE_WITHIN, "closed {lag:?} after the cancel");
    let conn = &hub.connections()[0];
    assert!(conn.cancelled_mid_body(), "closed by the hive while open: {conn:?}");
}
