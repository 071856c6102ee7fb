//! Heartbeats: while the upstream is silent the job still says "still downloading…" at the
//! configured interval, and once the job has ended no heartbeat follows its terminal event.

use std::time::{Duration, Instant};

use rbee_protocol::Event;

use crate::harness::fixtures::{hub_with_model, hub_with_slow_model, job, live_tasks, wait_status, MODEL, REPO};
use crate::harness::{Fault, Hive, SseStream, TIMEOUT};

/// How long heartbeats are counted.
const WINDOW: Duration = Duration::from_millis(3500);

/// Arrival times of the heartbeats among the frames arriving within `window`.
fn heartbeats_within(sse: &mut SseStream, window: Duration) -> Vec<(Instant, u64)> {
    let deadline = Instant::now() + window;
    let mut beats = Vec::new();
    while let Ok(f) = sse.next_frame(deadline.saturating_duration_since(Instant::now())) {
        match f.event {
            Event::Heartbeat { elapsed_secs, .. } => beats.push((Instant::now(), elapsed_secs)),
            e => assert!(!e.is_terminal(), "the stalled job ended: {e:?}"),
        }
    }
    beats
}

#[test]
fn heartbeats_flow_at_the_interval_while_upstream_stalls_and_stop_after_cancel() {
    let hub = hub_with_model(4 << 20);
    hub.set_fault(MODEL, Fault::StallAfter(256 << 10), 1);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).stall_secs(60).spawn();
    let id = hive.start_download(REPO, MODEL);
    let mut sse = hive.sse(&id);
    assert!(hub.wait_for_bytes(256 << 10, TIMEOUT), "the stall point was never reached");
    // Skip what was logged before the stall (the replay) and the first beat, then count.
    sse.until(TIMEOUT, |f| matches!(f.event, Event::Heartbeat { .. }));
    let beats = heartbeats_within(&mut sse, WINDOW);
    assert!((2..=5).contains(&beats.len()), "{} heartbeats in {WINDOW:?}: {beats:?}", beats.len());
    // The spacing by the hive's own clock (`elapsed_secs`, whole seconds): n beats 1 s apart span
    // n-1 s, give or take the truncation and a late timer; arrival times on a loaded machine only
    // get a generous bound (they catch a runaway or a stuck heartbeat, not jitter).
    let elapsed: Vec<_> = beats.iter().map(|b| b.1).collect();
    assert!(elapsed.windows(2).all(|w| w[0] <= w[1]), "elapsed_secs goes backwards: {elapsed:?}");
    let span = elapsed[elapsed.len() - 1] - elapsed[0];
    let n = elapsed.len() as u64;
    assert!((n - 2..=n).contains(&span), "{n} beats span {span} s by the hive's clock: {elapsed:?}");
    let gaps: Vec<_> = beats.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len()).expect("few gaps");
    assert!(
        (Duration::from_millis(250)..=Duration::from_secs(3)).contains(&mean),
        "heartbeat spacing {gaps:?} (mean {mean:?}) for --heartbeat-secs 1"
    );
    assert_eq!(hub.stats().connections.len(), 1, "a 60 s stall timeout retried within seconds");
    assert_eq!(job(&hive, &id)["status"], "running");

    let (status, body) = hive.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(live_tasks(&hive), 0, "the job or its heartbeat still alive when DELETE answered");
    assert_eq!(status, 200, "{body}");
    let rest = sse.until_terminal(TIMEOUT);
    assert!(matches!(rest.last().map(|f| &f.event), Some(Event::Cancelled { .. })), "{rest:#?}");
    let late = sse.collect_for(Duration::from_millis(2500));
    assert!(late.is_empty(), "events after `cancelled`: {late:#?}");
    let events = job(&hive, &id)["events"].clone();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(job(&hive, &id)["events"], events, "the job's log grew after it was cancelled");
}

#[test]
fn no_heartbeat_after_a_job_completes() {
    let hub = hub_with_slow_model(4 << 20, 2 << 20);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let id = hive.start_download(REPO, MODEL);
    let mut sse = hive.sse(&id);
    let frames = sse.until_terminal(3 * TIMEOUT);
    assert_eq!(live_tasks(&hive), 0, "the job or its heartbeat still alive once `done` was sent");
    assert!(matches!(frames.last().map(|f| &f.event), Some(Event::Done { .. })), "{frames:#?}");
    let beats = frames.iter().filter(|f| matches!(f.event, Event::Heartbeat { .. })).count();
    assert!(beats >= 1, "a ~2 s download with --heartbeat-secs 1 had no heartbeat: {frames:#?}");
    assert!(sse.collect_for(Duration::from_millis(2500)).is_empty(), "events after `done`");
    let info = wait_status(&hive, &id, "completed");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(job(&hive, &id)["events"], info["events"], "the job's log grew after it completed");
}
