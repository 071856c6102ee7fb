//! Complete downloads through the keeper land in the HF cache layout with the right bytes, and a
//! download that fails verification publishes nothing. Also home of the helpers the other
//! download-related modules (cancel, resume, retry, …) share.

use crate::harness::fixtures::{
    assert_not_published, assert_published, blob, etag, file_len, hub_with_model, incomplete, keeper_download,
    keeper_job_id, snapshot, wait_status, MODEL, REPO,
};
use crate::harness::{Fault, Hive};

#[test]
fn lfs_file_lands_in_the_hf_layout() {
    let hub = hub_with_model(4 << 20);
    let hive = Hive::spawn(&hub);
    let out = keeper_download(&hive, MODEL).run();
    out.assert_success();
    let pointer = assert_published(&hive, &hub, MODEL);
    out.assert_stdout_contains(&format!("✅ {}", pointer.display()));
    let blob = blob(&hive, &hub, MODEL);
    assert_eq!(etag(&hub, MODEL), hub.sha256(REPO, MODEL), "LFS blobs are named by their sha256");
    assert_eq!(file_len(&blob), 4 << 20);
    let stats = hub.stats();
    assert_eq!(stats.connections.len(), 1, "one CDN request: {:?}", stats.connections);
    assert_eq!(stats.connections[0].range, None, "a fresh download asks for no range");
}

#[test]
fn text_file_lands_in_the_hf_layout() {
    let hub = hub_with_model(1 << 20);
    let hive = Hive::spawn(&hub);
    let out = keeper_download(&hive, "config.json").run();
    out.assert_success();
    let pointer = assert_published(&hive, &hub, "config.json");
    out.assert_stdout_contains(&format!("✅ {}", pointer.display()));
    assert_eq!(std::fs::read(&pointer).expect("read snapshot"), hub.file_bytes(REPO, "config.json"));
    let tag = etag(&hub, "config.json");
    assert_eq!(tag.len(), 40, "non-LFS blobs are named by the git blob sha1: {tag}");
    assert!(hub.connections().is_empty(), "a non-LFS file is served by the hub, not the CDN");
}

#[test]
fn a_second_download_of_a_cached_file_fetches_nothing() {
    let hub = hub_with_model(1 << 20);
    let hive = Hive::spawn(&hub);
    keeper_download(&hive, MODEL).run().assert_success();
    let out = keeper_download(&hive, MODEL).run();
    out.assert_success();
    out.assert_stdout_contains(&format!("✅ {}", snapshot(&hive, &hub, MODEL).display()));
    assert_eq!(hub.connections().len(), 1, "the cached file was fetched again");
    assert_published(&hive, &hub, MODEL);
}

#[test]
fn wrong_bytes_fail_verification_and_publish_nothing() {
    let hub = hub_with_model(2 << 20);
    hub.set_fault(MODEL, Fault::WrongBytes, 1);
    let hive = Hive::spawn(&hub);
    let keeper = keeper_download(&hive, MODEL).spawn();
    let id = keeper_job_id(&keeper);
    let out = keeper.wait();
    out.assert_code(1);
    let want = hub.sha256(REPO, MODEL);
    out.assert_stderr_contains("sha256 mismatch");
    out.assert_stderr_contains(&format!("expected {want}"));
    let got = out.stderr.split("got ").nth(1).map(|s| s.chars().take(64).collect::<String>()).unwrap_or_default();
    assert!(got.len() == 64 && got.chars().all(|c| c.is_ascii_hexdigit()), "actual sha256 named\n{}", out.dump());
    assert_ne!(got, want);
    let info = wait_status(&hive, &id, "failed");
    let error = info["error"].as_str().unwrap_or_default();
    assert!(error.contains(&want) && error.contains(&got), "job error names both digests: {info}");
    assert_not_published(&hive, &hub, MODEL);
    assert!(!incomplete(&hive, &hub, MODEL).exists(), "the corrupt partial was kept");
    assert_eq!(hub.connections().len(), 1, "a verification failure is not retried");
}

#[test]
fn truncated_body_without_retries_fails_and_publishes_nothing() {
    let hub = hub_with_model(4 << 20);
    hub.set_fault(MODEL, Fault::TruncateAfter(1 << 20), 1);
    let hive = Hive::builder().hub(&hub).retries(0).spawn();
    let keeper = keeper_download(&hive, MODEL).spawn();
    let id = keeper_job_id(&keeper);
    let out = keeper.wait();
    out.assert_code(1);
    out.assert_stderr_contains(&format!("of {}", 4 << 20));
    let info = wait_status(&hive, &id, "failed");
    assert!(info["error"].as_str().is_some_and(|e| e.contains("no retries: --retries 0")), "{info}");
    assert_not_published(&hive, &hub, MODEL);
    assert!(file_len(&incomplete(&hive, &hub, MODEL)) <= 1 << 20, "more bytes on disk than the hub sent");
}
