//! Issue 24 §5: `--max-downloads` caps the transfers running at once; further jobs wait as
//! `queued`, their place narrated, heartbeats sent while they wait, and a queued job can be
//! cancelled. And transfers whose sockets are numbered above 1024 (`FD_SETSIZE`) work: libcurl
//! waits with `poll`, not `select`.

use rbee_protocol::Event;

use crate::harness::fixtures::{job, wait_for, wait_status, MODEL};
use crate::harness::{FakeHub, Hive, HubConfig, RepoSpec, TIMEOUT};

const REPOS: [&str; 3] = ["rbee-test/first", "rbee-test/second", "rbee-test/third"];

fn is_queued_line(event: &Event, place: usize) -> bool {
    matches!(event, Event::Narration { message } if message.contains(&format!("queued: place {place} ")))
}

#[test]
fn downloads_beyond_the_cap_wait_queued_and_a_queued_one_can_be_cancelled() {
    // 1 MiB at 256 KiB/s: the first download runs about 4 s.
    let hub = FakeHub::start(HubConfig { rate: 256 << 10, ..HubConfig::default() });
    for repo in REPOS {
        hub.add_repo(RepoSpec::demo(repo, 1 << 20));
    }
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).arg("--max-downloads").arg("1").spawn();
    let first = hive.start_download(REPOS[0], MODEL);
    wait_for(&hive, TIMEOUT, "the first download to run", || job(&hive, &first)["status"] == "running");
    let second = hive.start_download(REPOS[1], MODEL);
    let third = hive.start_download(REPOS[2], MODEL);

    let mut stream = hive.sse(&second);
    stream.until(TIMEOUT, |f| is_queued_line(&f.event, 1));
    stream.until(TIMEOUT, |f| matches!(f.event, Event::Heartbeat { ref message, .. } if message.contains("queued")));
    assert_eq!(job(&hive, &second)["status"], "queued", "hive log:\n{}", hive.log());
    hive.sse(&third).until(TIMEOUT, |f| is_queued_line(&f.event, 2));
    assert_eq!(job(&hive, &third)["status"], "queued");
    assert_ne!(job(&hive, &first)["status"], "queued");

    let (status, body) = hive.delete(&format!("/v1/jobs/{third}"));
    assert_eq!(status, 200, "cancel of a queued job: {body}");
    wait_status(&hive, &third, "cancelled");

    wait_status(&hive, &first, "completed");
    wait_status(&hive, &second, "completed");
    assert!(!hive.repo_dir(REPOS[2]).join("snapshots").exists(), "the cancelled queued job downloaded");
    // The second started only once the first had its slot back: no two transfers overlapped.
    let stats = hub.stats();
    assert_eq!(stats.cdn_bytes, 2 << 20, "{stats:?}");
}

#[test]
fn transfers_with_descriptors_above_1024_complete() {
    // The hive holds 1100 descriptors, so every socket curl opens is numbered above 1024, where
    // `select` fails ("Unrecoverable error in select/poll").
    let hub = FakeHub::start(HubConfig::default());
    for repo in REPOS {
        hub.add_repo(RepoSpec::demo(repo, 4 << 20));
    }
    let hive = Hive::builder().hub(&hub).retries(0).arg("--test-hold-fds").arg("1100").spawn();
    let ids: Vec<String> = REPOS.iter().map(|r| hive.start_download(r, MODEL)).collect();
    for id in &ids {
        let mut info = serde_json::Value::Null;
        wait_for(&hive, 3 * TIMEOUT, "the download to end", || {
            info = job(&hive, id);
            !matches!(info["status"].as_str(), Some("queued" | "running"))
        });
        assert_eq!(info["status"], "completed", "{info}\nhive log:\n{}", hive.log());
    }
    let fds = std::fs::read_dir(format!("/proc/{}/fd", hive.pid())).map(Iterator::count).unwrap_or(0);
    assert!(fds > 1024, "the hive holds only {fds} descriptors: the test proves nothing");
}
