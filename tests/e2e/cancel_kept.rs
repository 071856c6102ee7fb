//! Cancelling under a bandwidth cap keeps what arrived (issue 25 §8): the hive does not widen
//! past what the cap leaves room for, a part keeps its bytes down to a 64 KiB block (its write
//! batches hold at most 1/32 s of the cap), and the resume fetches exactly what is missing.

use std::time::Duration;

use rbee_protocol::Event;
use serde_json::json;

use crate::harness::fixtures::{
    assert_published, hub_with_model, keeper_download, keeper_job_id, PartMap, MODEL, REPO,
};
use crate::harness::{Hive, TIMEOUT};

/// Ctrl+C after 4 s of a 32 MiB download capped at 2 MiB/s (the CDN itself unthrottled): at least
/// 90 % of what the hive received (its last progress) is kept; the resume asks only for the
/// missing ranges, each exactly once. (What the CDN sent is printed beside it: it also counts
/// what sat in the socket buffers, never read by the hive.)
#[test]
fn ctrl_c_under_a_cap_keeps_what_arrived_and_the_resume_fetches_only_what_is_missing() {
    let size = 32 << 20;
    let hub = hub_with_model(size);
    let hive = Hive::spawn(&hub);
    let keeper = keeper_download(&hive, MODEL).args(["--max-rate", "2M"]).spawn();
    let id = keeper_job_id(&keeper);
    keeper.wait_for_stderr(TIMEOUT, |l| l.starts_with(&format!("⏳ {MODEL} ")));
    // The scenario is "Ctrl+C after 4 s": a fixed wait, not a synchronisation.
    std::thread::sleep(Duration::from_secs(4));
    keeper.send_sigint();
    keeper.wait().assert_code(130);
    assert!(hub.wait_all_closed(TIMEOUT), "a part outlived the cancel");

    let events: Vec<Event> = hive.sse(&id).until_terminal(TIMEOUT).into_iter().map(|f| f.event).collect();
    assert!(matches!(events.last(), Some(Event::Cancelled { .. })), "{events:#?}");
    let shown = events.iter().rev().find_map(|e| match e {
        Event::Progress { bytes, .. } => Some(*bytes),
        _ => None,
    });
    let shown = shown.unwrap_or_else(|| panic!("no progress before the cancel: {events:#?}"));
    let widened = events.iter().any(|e| matches!(e, Event::Narration { message } if message.contains("widened")));
    let sent = hub.stats().cdn_bytes;
    let map = PartMap::read(&hive, &hub, MODEL);
    let kept = map.held();
    eprintln!(
        "cancel_kept: received {shown} shown, {sent} sent by the CDN; kept {kept} ({:.1} % of shown, {:.1} % of sent)",
        100.0 * kept as f64 / shown as f64,
        100.0 * kept as f64 / sent as f64
    );
    assert!(!widened, "the 2 MiB/s cap leaves no room for a second connection: {events:#?}");
    assert!(shown >= 4 << 20 && shown < size, "4 s at 2 MiB/s: {shown} bytes shown");
    assert!(kept * 10 >= shown * 9, "kept {kept} of {shown} shown");

    // The resume, one connection, unthrottled: exactly the missing ranges.
    let before = hub.connections().len();
    let missing = map.missing();
    let op = json!({"operation": "model_download", "hive_id": "localhost", "model": format!("{REPO}:{MODEL}"), "connections": 1});
    let (status, body) = hive.post_job(&op);
    assert_eq!(status, 200, "{body}");
    let resumed = body["job_id"].as_str().expect("job_id").to_owned();
    let events: Vec<Event> = hive.sse(&resumed).until_terminal(6 * TIMEOUT).into_iter().map(|f| f.event).collect();
    assert!(matches!(events.last(), Some(Event::Done { .. })), "{events:#?}");
    assert!(hub.wait_all_closed(TIMEOUT));
    let asked: Vec<(u64, u64)> = hub.connections()[before..]
        .iter()
        .filter_map(|c| c.range.as_deref())
        .map(|r| {
            let (a, b) = r.trim_start_matches("bytes=").split_once('-').expect("a range");
            (a.parse().expect("start"), b.parse::<u64>().expect("end") + 1)
        })
        .collect();
    assert_eq!(asked, missing, "the resume asked for exactly what was missing");
    assert_eq!(hub.stats().cdn_bytes - sent, size - kept, "and fetched nothing twice");
    assert_published(&hive, &hub, MODEL);
}
