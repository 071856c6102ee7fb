//! A hive stops gracefully on SIGINT (Ctrl+C in its terminal) and SIGTERM: its jobs are cancelled
//! as `DELETE` cancels them, their end lines and its own are logged, partial downloads are kept,
//! it exits 0; a keeper watching a job prints `cancelled: the hive is shutting down` and exits 1.

use crate::harness::fixtures::{hub_with_model, keeper_download, partial_len, MODEL, REPO};
use crate::harness::{Hive, TIMEOUT};

fn stops_gracefully_on(signal: &str) {
    let hub = hub_with_model(8 << 20);
    hub.set_rate(512 << 10);
    let mut hive = Hive::spawn(&hub);
    let keeper = keeper_download(&hive, MODEL).spawn();
    assert!(hub.wait_for_bytes(256 << 10, TIMEOUT), "the download never started\n{}", keeper.dump());

    let status = hive.signal_and_wait(signal, TIMEOUT);
    let log = hive.log();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "SIG{signal}: {status:?}\nhive log:\n{log}");
    let ended = log.lines().find(|l| l.contains("cancelled after") && l.contains(&format!("{REPO}:{MODEL}")));
    assert!(ended.is_some(), "no end line naming the job's model and file\nhive log:\n{log}");
    assert!(log.contains("rbee-hive stopped: 1 job(s) cancelled"), "no shutdown line\nhive log:\n{log}");
    assert!(partial_len(&hive, &hub, MODEL) > 0, "the partial download was not kept\nhive log:\n{log}");

    let out = keeper.wait_timeout(TIMEOUT);
    out.assert_code(1).assert_stderr_contains("cancelled: the hive is shutting down");
}

#[test]
fn ctrl_c_on_a_foreground_hive_cancels_its_jobs_keeps_the_partial_and_exits_0() {
    stops_gracefully_on("INT");
}

#[test]
fn sigterm_stops_a_hive_the_same_way() {
    stops_gracefully_on("TERM");
}

/// A second Ctrl+C while the hive is still stopping its jobs exits at once (130), without the
/// graceful end line; what was on disk stays there.
#[test]
fn a_second_signal_while_stopping_exits_at_once() {
    let hub = hub_with_model(8 << 20);
    hub.set_rate(512 << 10);
    let mut hive = Hive::spawn(&hub);
    let keeper = keeper_download(&hive, MODEL).spawn();
    assert!(hub.wait_for_bytes(256 << 10, TIMEOUT), "the download never started\n{}", keeper.dump());

    hive.signal("INT");
    // The graceful stop lasts at least its 500 ms grace: the second signal lands inside it.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let started = std::time::Instant::now();
    let status = hive.signal_and_wait("INT", TIMEOUT);
    let log = hive.log();
    assert_eq!(status.and_then(|s| s.code()), Some(130), "second SIGINT: {status:?}\nhive log:\n{log}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(log.contains("second signal: exiting at once"), "no line for the second signal\nhive log:\n{log}");
    assert!(!log.contains("rbee-hive stopped:"), "the graceful end ran anyway\nhive log:\n{log}");
    assert!(partial_len(&hive, &hub, MODEL) > 0, "the partial download was lost\nhive log:\n{log}");
    drop(keeper);
}
