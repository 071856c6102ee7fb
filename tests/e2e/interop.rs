//! Interop with the real `huggingface_hub` (PyPI), run from `<workspace>/.venv` (`just py`):
//! each tool finds the other's files in the cache, and for the same downloads — one file or a
//! whole repo, at a branch, a tag or a commit — both leave the same layout (blobs, snapshot links,
//! refs). Python never reaches past loopback: the endpoint is the fake hub, telemetry and Xet are
//! off, and offline look-ups run with `HF_HUB_OFFLINE=1`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use rbee_protocol::Event;

use crate::harness::fixtures::{hub_with_slow_model, sha256_of};
use crate::harness::python::python;
use crate::harness::{FakeHub, Hive, HubConfig, RepoSpec, TIMEOUT};

const REPO: &str = "rbee-test/tiny-model";
const MULTI: &str = "rbee-test/multi-file";
/// Commit ids of [`MULTI`]: `v1.0` tags the old one, `main` is the new one.
const OLD: &str = "1111111111111111111111111111111111111111";
const NEW: &str = "2222222222222222222222222222222222222222";

/// One `hf_hub_download` (with a file) or `snapshot_download` (without).
fn ask(repo: &str, file: Option<&str>, revision: Option<&str>) -> Value {
    json!({ "repo": repo, "file": file, "revision": revision, "offline": false })
}

/// Runs the asks with huggingface_hub against `hub` into `cache`; returns the paths it answered.
#[track_caller]
fn huggingface_hub(hub: &FakeHub, cache: &Path, offline: bool, asks: &[Value]) -> Vec<PathBuf> {
    HfRun::start(hub, cache, offline, asks).wait()
}

/// A running huggingface_hub process (killed on drop).
struct HfRun {
    child: Option<Child>,
    command: String,
    _home: TempDir,
}

impl HfRun {
    fn start(hub: &FakeHub, cache: &Path, offline: bool, asks: &[Value]) -> Self {
        let asks: Vec<Value> = asks
            .iter()
            .cloned()
            .map(|mut a| {
                a["offline"] = json!(offline);
                a
            })
            .collect();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/interop/hf.py");
        let home = TempDir::new().expect("HF_HOME");
        let mut cmd = Command::new(python());
        cmd.arg(&script).arg(Value::from(asks).to_string());
        for var in ["HF_TOKEN", "HF_HUB_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"]
        {
            cmd.env_remove(var);
        }
        cmd.env("HF_ENDPOINT", hub.endpoint())
            .env("HF_HUB_CACHE", cache)
            .env("HF_HOME", home.path())
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env("HF_HUB_DISABLE_XET", "1")
            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            .env("HF_HUB_ENABLE_HF_TRANSFER", "0")
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1");
        if offline {
            cmd.env("HF_HUB_OFFLINE", "1");
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("run {cmd:?}: {e} (run `just py`)"));
        Self { child: Some(child), command: format!("{cmd:?}"), _home: home }
    }

    /// Waits (2 min at most) and returns the paths it printed; panics with its output on failure.
    #[track_caller]
    fn wait(mut self) -> Vec<PathBuf> {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("huggingface_hub still running after 2 min: {}", self.command);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (mut stdout, mut stderr) = (String::new(), String::new());
        child.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read stdout");
        child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
        assert!(
            status.success(),
            "huggingface_hub failed ({status}); is the venv set up? run `just py`\n{}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
            self.command
        );
        let last = stdout.lines().last().unwrap_or_default();
        let paths: Vec<String> = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        paths.into_iter().map(PathBuf::from).collect()
    }
}

impl Drop for HfRun {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `rbee model download repo [file] [--revision rev]` on `hive`, which must succeed.
#[track_caller]
fn hive_download(hive: &Hive, repo: &str, file: Option<&str>, revision: Option<&str>) -> String {
    crate::harness::download_ok(hive, repo, file, revision)
}

/// Everything under a repo folder: `path → dir | link → target | file <sha256>`. Python's
/// `trees/` (its cache of tree listings, a lookup shortcut of its own) is left out.
fn layout(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = e.expect("dir entry").path();
            let rel = path.strip_prefix(root).expect("below root").display().to_string();
            if rel == "trees" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let what = if meta.is_symlink() {
                format!("link → {}", std::fs::read_link(&path).expect("read_link").display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else {
                format!("file {}", sha256_of(&path))
            };
            out.insert(rel, what);
        }
    }
    out
}

#[track_caller]
fn assert_same_layout(python: &Path, hive: &Path) {
    let (py, ours) = (layout(python), layout(hive));
    let only_py: Vec<_> = py.iter().filter(|(k, v)| ours.get(*k) != Some(v)).collect();
    let only_ours: Vec<_> = ours.iter().filter(|(k, v)| py.get(*k) != Some(v)).collect();
    assert!(
        only_py.is_empty() && only_ours.is_empty(),
        "layouts differ\nonly huggingface_hub: {only_py:#?}\nonly the hive: {only_ours:#?}\nboth: {ours:#?}"
    );
}

fn folder(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

#[test]
fn huggingface_hub_finds_what_the_hive_downloaded() {
    let hub = FakeHub::with_default_repo();
    let hive = Hive::spawn(&hub);
    hive_download(&hive, REPO, Some("model.gguf"), None);
    hive_download(&hive, REPO, Some("config.json"), None);
    let requests = hub.stats().requests.len();
    let asks = [ask(REPO, Some("model.gguf"), None), ask(REPO, Some("config.json"), None)];
    let paths = huggingface_hub(&hub, hive.cache_dir(), true, &asks);
    let snapshot = hive.repo_dir(REPO).join("snapshots").join(hub.commit(REPO));
    assert_eq!(paths, [snapshot.join("model.gguf"), snapshot.join("config.json")]);
    assert_eq!(sha256_of(&paths[0]), hub.sha256(REPO, "model.gguf"));
    assert_eq!(sha256_of(&paths[1]), hub.sha256(REPO, "config.json"));
    assert_eq!(hub.stats().requests.len(), requests, "offline huggingface_hub asked the hub");
}

#[test]
fn the_hive_reuses_what_huggingface_hub_downloaded() {
    let hub = FakeHub::with_default_repo();
    let hive = Hive::spawn(&hub);
    let asks = [ask(REPO, Some("model.gguf"), None), ask(REPO, Some("config.json"), None)];
    let paths = huggingface_hub(&hub, hive.cache_dir(), false, &asks);
    let before = hub.stats();
    assert_eq!(before.cdn_bytes, 4 << 20, "huggingface_hub fetched the model from the CDN");
    assert!(before.hub_bytes >= 96, "huggingface_hub fetched config.json from the hub");
    let printed = hive_download(&hive, REPO, Some("model.gguf"), None);
    assert!(printed.contains(&paths[0].display().to_string()), "hive printed {printed:?}, python has {paths:?}");
    let printed = hive_download(&hive, REPO, Some("config.json"), None);
    assert!(printed.contains(&paths[1].display().to_string()), "hive printed {printed:?}, python has {paths:?}");
    let after = hub.stats();
    assert_eq!((after.cdn_bytes, after.hub_bytes), (before.cdn_bytes, before.hub_bytes), "the hive fetched bytes");
    assert_eq!(after.connections.len(), before.connections.len(), "the hive opened a CDN connection");
    assert!(!hive.log().contains("panicked"), "{}", hive.log());
}

/// [`MULTI`]: two commits with nested, LFS and plain files; `v1.0` → [`OLD`], `main` → [`NEW`].
fn multi_hub() -> FakeHub {
    let hub = FakeHub::start(HubConfig::default());
    let files = |spec: RepoSpec| {
        spec.lfs("model.gguf", 300 << 10)
            .text("config.json", 120)
            .text("tok/tokenizer.json", 500)
            .lfs("tok/deep/w.bin", 70_000)
    };
    hub.add_repo(files(RepoSpec::new(MULTI)).commit(OLD).tag("v1.0"));
    hub.add_repo(files(RepoSpec::new(MULTI)).commit(NEW));
    hub
}

/// The same downloads through huggingface_hub and through the hive leave the same repo folder:
/// single files and whole snapshots, at a branch, a tag and a commit (the latter writes no ref).
#[test]
fn whole_repo_and_revisions_match_huggingface_hub_layout() {
    let hub = multi_hub();
    let hive = Hive::spawn(&hub);
    let asks = [
        (Some("config.json"), Some(OLD)),
        (Some("tok/deep/w.bin"), Some("v1.0")),
        (None, Some("v1.0")),
        (None, None),
        (None, Some(NEW)),
    ];
    for (file, revision) in asks {
        let printed = hive_download(&hive, MULTI, file, revision);
        if file.is_none() {
            let commit = if revision == Some("v1.0") { OLD } else { NEW };
            assert!(printed.contains(&format!("snapshots/{commit}")), "whole-repo download printed {printed:?}");
        }
    }
    let py_cache = TempDir::new().expect("python cache");
    let py_asks: Vec<Value> = asks.iter().map(|(f, r)| ask(MULTI, *f, *r)).collect();
    huggingface_hub(&hub, py_cache.path(), false, &py_asks);
    assert_same_layout(&folder(py_cache.path(), MULTI), &hive.repo_dir(MULTI));
    // And the facts behind the comparison, in case both tools were wrong the same way.
    let ours = layout(&hive.repo_dir(MULTI));
    let refs: Vec<_> = ours.keys().filter(|k| k.starts_with("refs/")).collect();
    assert_eq!(refs, ["refs/main", "refs/v1.0"], "a commit revision writes no ref");
    assert_eq!(std::fs::read_to_string(hive.repo_dir(MULTI).join("refs/v1.0")).expect("ref"), OLD);
    assert_eq!(std::fs::read_to_string(hive.repo_dir(MULTI).join("refs/main")).expect("ref"), NEW);
    for commit in [OLD, NEW] {
        for file in ["model.gguf", "config.json", "tok/tokenizer.json", "tok/deep/w.bin"] {
            let path = hive.repo_dir(MULTI).join("snapshots").join(commit).join(file);
            let want = hub.file_info(MULTI, commit, file).expect("hub file").sha256;
            assert_eq!(sha256_of(&path), want, "{commit}/{file}");
        }
    }
}

#[test]
fn huggingface_hub_offline_snapshot_finds_the_hives_whole_repo_download() {
    let hub = multi_hub();
    let hive = Hive::spawn(&hub);
    hive_download(&hive, MULTI, None, Some("v1.0"));
    let requests = hub.stats().requests.len();
    let paths = huggingface_hub(&hub, hive.cache_dir(), true, &[ask(MULTI, None, Some("v1.0"))]);
    assert_eq!(paths, [hive.repo_dir(MULTI).join("snapshots").join(OLD)]);
    let file = paths[0].join("tok/deep/w.bin");
    assert_eq!(sha256_of(&file), hub.file_info(MULTI, "v1.0", "tok/deep/w.bin").expect("hub file").sha256);
    assert_eq!(hub.stats().requests.len(), requests, "offline huggingface_hub asked the hub");
}

/// A hub whose CDN crawls until the test lets it go (`set_rate(0)`).
fn crawling_hub() -> FakeHub {
    hub_with_slow_model(4 << 20, 64 << 10)
}

/// Both tools lock `.locks/models--org--name/<etag>.lock`: while huggingface_hub downloads, the
/// hive waits for it, then publishes the blob huggingface_hub wrote without fetching it again.
#[test]
fn the_hive_waits_for_a_concurrent_huggingface_hub_download() {
    let hub = crawling_hub();
    let hive = Hive::spawn(&hub);
    let python = HfRun::start(&hub, hive.cache_dir(), false, &[ask(REPO, Some("model.gguf"), None)]);
    assert!(hub.wait_for_bytes(1, 6 * TIMEOUT), "huggingface_hub never started downloading");
    let id = hive.start_download(REPO, "model.gguf");
    let mut sse = hive.sse(&id);
    sse.until(TIMEOUT, |f| matches!(&f.event, Event::Narration { message } if message.contains("another job")));
    hub.set_rate(0);
    let paths = python.wait();
    let frames = sse.until_terminal(3 * TIMEOUT);
    let Event::Done { path: Some(path), .. } = &frames.last().expect("terminal").event else {
        panic!("hive job did not finish: {frames:#?}\n{}", hive.log());
    };
    assert_eq!(Path::new(path), paths[0]);
    assert_eq!(sha256_of(&paths[0]), hub.sha256(REPO, "model.gguf"));
    assert!(hub.wait_all_closed(TIMEOUT));
    let stats = hub.stats();
    assert_eq!((stats.connections.len(), stats.cdn_bytes), (1, 4 << 20), "one download: {:#?}", stats.connections);
}

/// And the other way round: huggingface_hub waits for the hive's lock and reuses its blob.
#[test]
fn huggingface_hub_waits_for_a_concurrent_hive_download() {
    let hub = crawling_hub();
    let hive = Hive::spawn(&hub);
    let id = hive.start_download(REPO, "model.gguf");
    let mut sse = hive.sse(&id);
    assert!(hub.wait_for_bytes(1, TIMEOUT), "the hive never started downloading");
    let heads = hub.stats().requests.len();
    let python = HfRun::start(&hub, hive.cache_dir(), false, &[ask(REPO, Some("model.gguf"), None)]);
    // huggingface_hub asked the hub about the file: it is about to take the lock the hive holds.
    assert!(hub.wait_until(6 * TIMEOUT, |s| s.requests.len() > heads), "huggingface_hub never asked the hub");
    hub.set_rate(0);
    let frames = sse.until_terminal(3 * TIMEOUT);
    assert!(matches!(frames.last().expect("terminal").event, Event::Done { .. }), "{frames:#?}\n{}", hive.log());
    let paths = python.wait();
    assert_eq!(paths[0], hive.repo_dir(REPO).join("snapshots").join(hub.commit(REPO)).join("model.gguf"));
    assert_eq!(sha256_of(&paths[0]), hub.sha256(REPO, "model.gguf"));
    assert!(hub.wait_all_closed(TIMEOUT));
    let stats = hub.stats();
    assert_eq!((stats.connections.len(), stats.cdn_bytes), (1, 4 << 20), "one download: {:#?}", stats.connections);
}
