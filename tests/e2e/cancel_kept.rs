//! Cancelling under a bandwidth cap keeps what arrived (issue 25 §8): the hive does not widen
//! past what the cap leaves room for, a part keeps its bytes down to a 64 KiB block (its write
//! batches hold at most 1/32 s of the cap), and the resume fetches exactly what is missing.

use std::time::Duration;

use rbee_protocol::Event;
use serde_json::json;

use crate::harness::fixtures::{
    assert_published, hub_with_model, keeper_download, keeper_job_id, PartMap, MODEL, REPO,
};
use crate::harness::{FakeHub, Hive, Keeper, TIMEOUT};

/// Downloads a 32 MiB file under `--max-rate rate` (the CDN itself unthrottled) and presses
/// Ctrl+C after `secs`; asserts that the hive kept at least 90 % of what it received (its last
/// progress) and never widened. What the CDN sent is printed beside it: it also counts what sat in
/// the socket buffers, never read by the hive. Returns the hub, the hive, the CDN's bytes and the
/// part map.
fn cancel_after(rate: &str, secs: u64) -> (FakeHub, Hive, u64, PartMap) {
    let size = 32 << 20;
    let hub = hub_with_model(size);
    let hive = Hive::spawn(&hub);
    let keeper = keeper_download(&hive, MODEL).args(["--max-rate", rate]).spawn();
    let id = keeper_job_id(&keeper);
    keeper.wait_for_stderr(TIMEOUT, |l| l.starts_with(&format!("⏳ {MODEL} ")));
    // The scenario is "Ctrl+C after N s": a fixed wait, not a synchronisation.
    std::thread::sleep(Duration::from_secs(secs));
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
        "cancel_kept: {rate}/s, Ctrl+C after {secs} s: received {shown} shown, {sent} sent by the CDN; kept {kept} \
         ({:.1} % of shown, {:.1} % of sent)",
        100.0 * kept as f64 / shown as f64,
        100.0 * kept as f64 / sent as f64
    );
    assert!(!widened, "the {rate}/s cap leaves no room for a second connection: {events:#?}");
    assert!(shown >= 1 << 20 && shown < size, "{shown} bytes shown");
    assert!(kept * 10 >= shown * 9, "kept {kept} of {shown} shown");
    (hub, hive, sent, map)
}

/// The measurement: Ctrl+C after 4 s at 2 MiB/s keeps ≥ 90 %; the resume (one
/// connection, unthrottled) asks only for the missing ranges, each exactly once.
#[test]
fn ctrl_c_under_a_cap_keeps_what_arrived_and_the_resume_fetches_only_what_is_missing() {
    let (hub, hive, sent, map) = cancel_after("2M", 4);
    let (size, kept, missing) = (map.size, map.held(), map.missing());
    // A dry run counts the blocks the parts kept as fetched already (issue 25 §10).
    let plan = Keeper::new().hive(&hive).args(["--json", "model", "download", REPO, MODEL, "--dry-run"]).run();
    let plan: serde_json::Value = serde_json::from_str(plan.assert_success().stdout.trim()).expect("the plan as JSON");
    assert_eq!(plan["to_fetch"], size - kept, "the plan's bytes to fetch after the cancel: {plan}");
    assert_eq!(plan["files"][0]["partial"], kept, "{plan}");
    let before = hub.connections().len();
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

/// Early and slow: after 2 s at 1 MiB/s a part holds about 2 MiB, which a 1 MiB write batch (one
/// connection's, without the cap's smaller batches) would halve; ≥ 90 % is kept.
#[test]
fn an_early_ctrl_c_under_a_low_cap_keeps_what_arrived() {
    cancel_after("1M", 2);
}
