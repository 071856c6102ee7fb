//! A dropped event stream: the keeper reconnects with `Last-Event-ID` and the user sees every
//! event exactly once. A proxy between keeper and hive cuts the connection mid-download.

use std::time::{Duration, Instant};

use crate::harness::fixtures::ndjson;
use crate::harness::proxy::Proxy;
use crate::harness::{FakeHub, Hive, Keeper, TIMEOUT};

#[test]
fn a_cut_stream_is_resumed_without_gap_or_duplicate() {
    let hub = FakeHub::with_default_repo();
    hub.set_rate(1024 * 1024);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let proxy = Proxy::start(hive.url());
    let keeper = Keeper::new().args(["--hive", &proxy.url(), "--json", "model", "download"]);
    let running = keeper.args(["rbee-test/tiny-model", "model.gguf"]).spawn();

    // Cut twice while the job runs, each time after new progress arrived.
    let progress = |text: String| text.lines().filter(|l| l.contains(r#""kind":"progress""#)).count();
    let mut seen = 0;
    for round in 1..=2 {
        let deadline = Instant::now() + TIMEOUT;
        while progress(running.stdout()) <= seen {
            assert!(Instant::now() < deadline, "round {round}: no new progress\n{}", running.dump());
            std::thread::sleep(Duration::from_millis(20));
        }
        seen = progress(running.stdout());
        let before = proxy.connections();
        assert!(proxy.cut() >= 1, "round {round}: nothing to cut\n{}", running.dump());
        let reconnected = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            proxy.connections() > before
        });
        assert!(reconnected, "round {round}: the keeper never reconnected\n{}", running.dump());
    }

    let out = running.wait();
    out.assert_success();
    let shown = ndjson(&out.stdout, &out.dump());
    assert_eq!(shown.last().unwrap()["kind"], "done", "{}", out.dump());

    // Exactly the hive's own log of the job, from the first event to the last.
    let job_id = shown[0]["job_id"].as_str().unwrap();
    let log = hive.sse(job_id).until_terminal(TIMEOUT);
    let ids = |frames: &[rbee_protocol::sse::Frame]| frames.iter().map(|f| f.id).collect::<Vec<_>>();
    let shown_ids: Vec<_> = shown.iter().map(|e| e["id"].as_u64()).collect();
    assert_eq!(shown_ids, ids(&log), "the keeper's events differ from the hive's log\n{}", out.dump());
}
