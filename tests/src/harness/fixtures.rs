//! Fixtures the end-to-end tests share: the default test repo, where its files land in a hive's
//! cache, waits on a hive's jobs, hashes, process readings, and request bodies in rbee's form.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{FakeHub, Fault, Hive, HubConfig, Keeper, RepoSpec, Running, TIMEOUT};

/// The repo the download tests use.
pub const REPO: &str = "rbee-test/tiny-model";

/// Its LFS file.
pub const MODEL: &str = "model.gguf";

/// A hub serving [`REPO`] with a `model_size`-byte LFS [`MODEL`] and a small `config.json`.
pub fn hub_with_model(model_size: u64) -> FakeHub {
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(RepoSpec::demo(REPO, model_size));
    hub
}

/// [`hub_with_model`] whose CDN sends `rate` bytes/s per connection (0: unthrottled).
pub fn hub_with_slow_model(model_size: u64, rate: u64) -> FakeHub {
    let hub = hub_with_model(model_size);
    hub.set_rate(rate);
    hub
}

/// [`hub_with_slow_model`] that applies `fault` to the next `times` requests of [`MODEL`].
pub fn hub_with_faulty_model(model_size: u64, rate: u64, fault: Fault, times: usize) -> FakeHub {
    let hub = hub_with_slow_model(model_size, rate);
    hub.set_fault(MODEL, fault, times);
    hub
}

/// A hub with [`REPO`] (its [`MODEL`] `model_size` bytes) and a hive that has downloaded
/// [`MODEL`] through the keeper.
#[track_caller]
pub fn cached_model(model_size: u64) -> (FakeHub, Hive) {
    let hub = hub_with_model(model_size);
    let hive = Hive::spawn(&hub);
    super::download_ok(&hive, REPO, Some(MODEL), None);
    (hub, hive)
}

/// The hub's etag of `file` at `main` (the blob's name in the cache).
pub fn etag(hub: &FakeHub, file: &str) -> String {
    hub.file_info(REPO, "main", file).unwrap_or_else(|| panic!("fake hub has no {REPO}/{file}")).etag
}

/// `blobs/<etag>` of `file`.
pub fn blob(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
    hive.repo_dir(REPO).join("blobs").join(etag(hub, file))
}

/// `blobs/<etag>.incomplete` of `file`.
pub fn incomplete(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
    hive.repo_dir(REPO).join("blobs").join(format!("{}.incomplete", etag(hub, file)))
}

/// `.locks/models--…/<etag>.parts` of `file`: the sparse data of a download in parts.
pub fn parts_file(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
    locks_dir(hive).join(format!("{}.parts", etag(hub, file)))
}

/// The part map of `file` (`.partmap` beside its `.parts`): the blocks a download in parts holds.
#[derive(Debug, Clone)]
pub struct PartMap {
    pub size: u64,
    pub block: u64,
    pub done: Vec<bool>,
}

impl PartMap {
    /// Reads the map (`rbee-parts 1 {size} {block}` + one `0`/`1` per block).
    #[track_caller]
    pub fn read(hive: &Hive, hub: &FakeHub, file: &str) -> Self {
        let path = parts_file(hive, hub, file).with_extension("partmap");
        let map = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let nl = map.iter().position(|b| *b == b'\n').expect("the map's header");
        let head = String::from_utf8_lossy(&map[..nl]).into_owned();
        let fields: Vec<u64> = head.split(' ').skip(2).map(|f| f.parse().expect("a number")).collect();
        let [size, block] = fields[..] else { panic!("bad part map header `{head}`") };
        Self { size, block, done: map[nl + 1..].iter().map(|b| *b == b'1').collect() }
    }

    /// Bytes in the blocks marked done.
    pub fn held(&self) -> u64 {
        self.missing().iter().fold(self.size, |held, (a, b)| held - (b - a))
    }

    /// Block `i` as a byte range (end exclusive).
    pub fn block_range(&self, i: u64) -> (u64, u64) {
        (i * self.block, ((i + 1) * self.block).min(self.size))
    }

    /// The byte ranges not held, in file order.
    pub fn missing(&self) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (i, _) in (0..).zip(&self.done).filter(|(_, d)| !**d) {
            let (a, b) = self.block_range(i);
            match runs.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => runs.push((a, b)),
            }
        }
        runs
    }
}

/// `.locks/models--…/` of [`REPO`] (blob locks, part files and their maps).
pub fn locks_dir(hive: &Hive) -> PathBuf {
    let folder = hive.repo_dir(REPO).file_name().expect("repo folder").to_owned();
    hive.cache_dir().join(".locks").join(folder)
}

/// Bytes kept for resume of `file`: the `.incomplete` (one stream) plus the part file's extent
/// (a download in parts).
pub fn partial_len(hive: &Hive, hub: &FakeHub, file: &str) -> u64 {
    file_len(&incomplete(hive, hub, file)) + file_len(&parts_file(hive, hub, file))
}

/// Every file of [`REPO`]'s cache: its repo dir and its `.locks/` dir (part files live there).
pub fn cache_state(hive: &Hive) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut state = super::disk_state(&hive.repo_dir(REPO));
    state.extend(super::disk_state(&locks_dir(hive)));
    state
}

/// `snapshots/<commit>/<file>`.
pub fn snapshot(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
    hive.repo_dir(REPO).join("snapshots").join(hub.commit(REPO)).join(file)
}

/// Size of a file, 0 when it does not exist.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Hex sha256 of a file's content.
#[track_caller]
pub fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex::encode(Sha256::digest(bytes))
}

/// Poll `cond` every 20 ms until it holds; panics with `what` (and the hive log) after `timeout`.
#[track_caller]
pub fn wait_for(hive: &Hive, timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}\nhive log:\n{}", hive.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /v1/jobs/{id}` (asserting 200).
#[track_caller]
pub fn job(hive: &Hive, id: &str) -> Value {
    let (status, body) = hive.get(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 200, "GET /v1/jobs/{id}: {body}\nhive log:\n{}", hive.log());
    body
}

/// Wait until job `id` has `status`; returns its info.
#[track_caller]
pub fn wait_status(hive: &Hive, id: &str, status: &str) -> Value {
    let mut info = Value::Null;
    wait_for(hive, 3 * TIMEOUT, &format!("job {id} to be {status} (last: {info})"), || {
        info = job(hive, id);
        info["status"] == status
    });
    info
}

/// `live_tasks` of `/health`.
#[track_caller]
pub fn live_tasks(hive: &Hive) -> u64 {
    let (status, body) = hive.get("/health");
    assert_eq!(status, 200, "{body}");
    body["live_tasks"].as_u64().unwrap_or_else(|| panic!("no live_tasks in /health: {body}"))
}

/// The job id the keeper announced on stderr (`📋 job <id>`).
#[track_caller]
pub fn keeper_job_id(keeper: &Running) -> String {
    let line = keeper.wait_for_stderr(TIMEOUT, |l| l.starts_with("📋 job "));
    line.trim_start_matches("📋 job ").trim().to_owned()
}

/// The start offset of a `Range: bytes=N-` header.
#[track_caller]
pub fn range_start(range: Option<&str>) -> u64 {
    let r = range.unwrap_or_else(|| panic!("no Range header"));
    r.strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an open `bytes=N-` range: {r:?}"))
}

/// `file` is published: snapshot link → `../../blobs/<etag>`, blob with the hub's bytes, no
/// `.incomplete`, `refs/main` = commit. Returns the snapshot path.
#[track_caller]
pub fn assert_published(hive: &Hive, hub: &FakeHub, file: &str) -> PathBuf {
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
pub fn assert_not_published(hive: &Hive, hub: &FakeHub, file: &str) {
    let pointer = snapshot(hive, hub, file);
    assert!(std::fs::symlink_metadata(&pointer).is_err(), "snapshot link {} exists", pointer.display());
    let blob = blob(hive, hub, file);
    assert!(!blob.exists(), "blob {} exists", blob.display());
}

/// A keeper downloading `file` of [`REPO`] from `hive`.
pub fn keeper_download(hive: &Hive, file: &str) -> Keeper {
    Keeper::new().hive(hive).args(["model", "download", REPO, file])
}

/// Whether the full (soak) sizes were asked for.
pub fn soak() -> bool {
    std::env::var_os("RBEE_SOAK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Waits until no job runs (`/health` `running_jobs` and `live_tasks` both 0).
#[track_caller]
pub fn wait_idle(hive: &Hive, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, h) = hive.get("/health");
        if h["running_jobs"] == 0 && h["live_tasks"] == 0 {
            return h;
        }
        assert!(Instant::now() < deadline, "still busy after {timeout:?}: {h}\nhive log:\n{}", hive.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The NDJSON lines of a `--json` run, checked: each parses, ids increase one by one, one job.
#[track_caller]
pub fn ndjson(stdout: &str, dump: &str) -> Vec<Value> {
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{dump}")))
        .collect();
    assert!(!events.is_empty(), "no events\n{dump}");
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().expect("every event has an id")).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "ids not consecutive: {ids:?}\n{dump}");
    assert!(events.iter().all(|e| e["job_id"] == events[0]["job_id"]), "one job\n{dump}");
    events
}

/// A `model_download` operation in rbee's form.
pub fn op_download(repo: &str, file: &str) -> Value {
    json!({ "operation": "model_download", "hive_id": "localhost", "model": format!("{repo}:{file}"), "revision": "main" })
}

/// A `model_delete` operation in rbee's form.
pub fn op_remove(repo: &str, file: Option<&str>) -> Value {
    let id = file.map_or_else(|| repo.to_owned(), |f| format!("{repo}:{f}"));
    json!({ "operation": "model_delete", "hive_id": "localhost", "id": id })
}

/// Sends `head` (CRLF lines, without the blank line) and `body` as given; the status and the
/// whole response text (read until the hive closes, or 10 s).
pub fn raw(addr: &str, head: &str, body: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).expect("connect to the hive");
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut text = head.replace('\n', "\r\n");
    if !body.is_empty() {
        text.push_str(&format!("\r\nContent-Length: {}", body.len()));
    }
    text.push_str("\r\nConnection: close\r\n\r\n");
    conn.write_all(text.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, out)
}

/// Every file, directory and symlink under `root` with its size (files) or target (links).
pub fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            let what = if meta.is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).map(|p| p.display().to_string()).unwrap_or_default())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else {
                format!("file {} bytes", meta.len())
            };
            out.insert(path.strip_prefix(root).unwrap_or(&path).to_path_buf(), what);
        }
    }
    out
}
