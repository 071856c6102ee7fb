//! Complete downloads through the keeper land in the HF cache layout with the right bytes, and a
//! download that fails verification publishes nothing. Also home of the helpers the other
//! download-related modules (cancel, resume, retry, …) share.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::{FakeHub, Fault, Hive, HubConfig, Keeper, RepoSpec, Running, TIMEOUT};

/// The repo the download tests use.
pub(crate) const REPO: &str = "rbee-test/tiny-model";
/// Its LFS file.
pub(crate) const MODEL: &str = "model.gguf";

/// A hub serving [`REPO`] with a `model_size`-byte LFS [`MODEL`] and a small `config.json`.
pub(crate) fn hub_with_model(model_size: u64) -> FakeHub {
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(RepoSpec::demo(REPO, model_size));
    hub
}

/// The hub's etag of `file` at `main` (the blob's name in the cache).
pub(crate) fn etag(hub: &FakeHub, file: &str) -> String {
    hub.file_info(REPO, "main", file).unwrap_or_else(|| panic!("fake hub has no {REPO}/{file}")).etag
}

/// `blobs/<etag>` of `file`.
pub(crate) fn blob(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
    hive.repo_dir(REPO).join("blobs").join(etag(hub, file))
}

/// `blobs/<etag>.incomplete` of `file`.
pub(crate) fn incomplete(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
    hive.repo_dir(REPO).join("blobs").join(format!("{}.incomplete", etag(hub, file)))
}

/// `.locks/models--…/<etag>.parts` of `file`: the sparse data of a download in parts.
pub(crate) fn parts_file(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
    locks_dir(hive).join(format!("{}.parts", etag(hub, file)))
}

/// `.locks/models--…/` of [`REPO`] (blob locks, part files and their maps).
pub(crate) fn locks_dir(hive: &Hive) -> PathBuf {
    let folder = hive.repo_dir(REPO).file_name().expect("repo folder").to_owned();
    hive.cache_dir().join(".locks").join(folder)
}

/// Bytes kept for resume of `file`: the `.incomplete` (one stream) plus the part file's extent
/// (a download in parts).
pub(crate) fn partial_len(hive: &Hive, hub: &FakeHub, file: &str) -> u64 {
    file_len(&incomplete(hive, hub, file)) + file_len(&parts_file(hive, hub, file))
}

/// Every file of [`REPO`]'s cache: its repo dir and its `.locks/` dir (part files live there).
pub(crate) fn cache_state(hive: &Hive) -> std::collections::BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut state = crate::harness::disk_state(&hive.repo_dir(REPO));
    state.extend(crate::harness::disk_state(&locks_dir(hive)));
    state
}

/// `snapshots/<commit>/<file>`.
pub(crate) fn snapshot(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
    hive.repo_dir(REPO).join("snapshots").join(hub.commit(REPO)).join(file)
}

/// Size of a file, 0 when it does not exist.
pub(crate) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Hex sha256 of a file's content.
#[track_caller]
pub(crate) fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex::encode(Sha256::digest(bytes))
}

/// Poll `cond` every 20 ms until it holds; panics with `what` (and the hive log) after `timeout`.
#[track_caller]
pub(crate) fn wait_for(hive: &Hive, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}\nhive log:\n{}", hive.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /v1/jobs/{id}` (asserting 200).
#[track_caller]
pub(crate) fn job(hive: &Hive, id: &str) -> Value {
    let (status, body) = hive.get(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 200, "GET /v1/jobs/{id}: {body}\nhive log:\n{}", hive.log());
    body
}

/// Wait until job `id` has `status`; returns its info.
#[track_caller]
pub(crate) fn wait_status(hive: &Hive, id: &str, status: &str) -> Value {
    let mut info = Value::Null;
    wait_for(hive, 3 * TIMEOUT, &format!("job {id} to be {status} (last: {info})"), || {
        info = job(hive, id);
        info["status"] == status
    });
    info
}

/// `live_tasks` of `/health`.
#[track_caller]
pub(crate) fn live_tasks(hive: &Hive) -> u64 {
    let (status, body) = hive.get("/health");
    assert_eq!(status, 200, "{body}");
    body["live_tasks"].as_u64().unwrap_or_else(|| panic!("no live_tasks in /health: {body}"))
}

/// The job id the keeper announced on stderr (`📋 job <id>`).
#[track_caller]
pub(crate) fn keeper_job_id(keeper: &Running) -> String {
    let line = keeper.wait_for_stderr(TIMEOUT, |l| l.starts_with("📋 job "));
    line.trim_start_matches("📋 job ").trim().to_owned()
}

/// The start offset of a `Range: bytes=N-` header.
#[track_caller]
pub(crate) fn range_start(range: Option<&str>) -> u64 {
    let r = range.unwrap_or_else(|| panic!("no Range header"));
    r.strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an open `bytes=N-` range: {r:?}"))
}

/// `file` is published: snapshot link → `../../blobs/<etag>`, blob with the hub's bytes, no
/// `.incomplete`, `refs/main` = commit. Returns the snapshot path.
#[track_caller]
pub(crate) fn assert_published(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
    let pointer = snapshot(hive, hub, file);
    let target = std::fs::read_link(&pointer).unwrap_or_else(|e| panic!("{} is no symlink: {e}", pointer.display()));
    assert_eq!(target, Path::new("../../blobs").join(etag(hub, file)), "relative link to the blob");
    let blob = blob(hive, hub, file);
    assert!(blob.is_file() && !blob.is_symlink(), "blob {} missing", blob.display());
    assert_eq!(sha256_of(&pointer), hub.sha256(REPO, file), "content of {}", pointer.display());
    assert!(!incomplete(hive, hub, file).exists(), ".incomplete left behind after publishing");
    assert!(!parts_file(hive, hub, file).exists(), "part file left behind after publishing");
    let main = std::fs::read_to_string(hive.repo_dir(REPO).join("refs/main")).expect("refs/main");
    assert_eq!(main.trim(), hub.commit(REPO), "refs/main");
    pointer
}

/// Neither blob nor snapshot link of `file` exists.
#[track_caller]
pub(crate) fn assert_not_published(hive: &Hive, hub: &FakeHub, file: &str) {
    let pointer = snapshot(hive, hub, file);
    assert!(std::fs::symlink_metadata(&pointer).is_err(), "snapshot link {} exists", pointer.display());
    let blob = blob(hive, hub, file);
    assert!(!blob.exists(), "blob {} exists", blob.display());
}

/// A keeper downloading `file` of [`REPO`] from `hive`.
pub(crate) fn keeper_download(hive: &Hive, file: &str) -> Keeper {
    Keeper::new().hive(hive).args(["model", "download", REPO, file])
}

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
