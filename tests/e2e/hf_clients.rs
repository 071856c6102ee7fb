//! huggingface_hub and the hive agree where the cache is and what the `/hf` mirror serves: with
//! only `XDG_CACHE_HOME` set both use `$XDG_CACHE_HOME/huggingface/hub`, and `snapshot_download`
//! and `hf download org/repo` fetch whole repos through `<hive>/hf`. Python runs from
//! `<workspace>/.venv` (`just py`) and never reaches past loopback.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::harness::fixtures::{hub_with_model, sha256_of, MODEL, REPO};
use crate::harness::process::KillOnDrop;
use crate::harness::{bin, free_port, http, Keeper, TIMEOUT};

/// A command of `<workspace>/.venv/bin/` (`python`, `hf`), which `just py` installs.
fn venv(tool: &str) -> Command {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin").join(tool);
    assert!(path.is_file(), "{} is missing: run `just py` (a venv with huggingface_hub) first", path.display());
    let mut cmd = Command::new(path);
    for var in ["HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HOME", "HF_ENDPOINT", "XDG_CACHE_HOME"] {
        cmd.env_remove(var);
    }
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
        cmd.env_remove(var);
    }
    cmd.env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("HF_HUB_ENABLE_HF_TRANSFER", "0")
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1");
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd` (2 min at most); its output, which must be a success.
#[track_caller]
fn succeed(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed ({})\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}", out.status);
    out
}

/// A hive started with exactly the HF environment given (none of the harness's defaults).
struct BareHive {
    _child: KillOnDrop,
    url: String,
}

impl BareHive {
    fn start(env: &[(&str, &Path)], endpoint: &str) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(bin("rbee-hive"));
        cmd.args(["--addr", &addr]);
        for var in ["HF_TOKEN", "HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME", "HF_HUB_OFFLINE", "RBEE_HIVE_TOKEN"] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied()).env("HF_ENDPOINT", endpoint);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let hive = Self { _child: KillOnDrop(child), url: format!("http://{addr}") };
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the hive at {addr} never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        hive
    }

    /// The cache directory its `/health` reports.
    fn cache_dir(&self) -> PathBuf {
        let health = http::request("GET", &format!("{}/health", self.url), &[("Accept", "application/json")], None);
        let health = health.expect("GET /health").json();
        PathBuf::from(health["cache_dir"].as_str().unwrap_or_else(|| panic!("no cache_dir in {health}")))
    }
}

#[test]
fn xdg_cache_home_alone_decides_the_cache_for_the_hive_and_huggingface_hub() {
    let hub = hub_with_model(64 << 10);
    let (xdg, home) = (TempDir::new().expect("xdg"), TempDir::new().expect("home"));
    let env = [("XDG_CACHE_HOME", xdg.path()), ("HOME", home.path())];
    let hive = BareHive::start(&env, hub.endpoint());
    let expected = xdg.path().join("huggingface/hub");
    assert_eq!(hive.cache_dir(), expected, "the hive's cache is not $XDG_CACHE_HOME/huggingface/hub");

    let out = Keeper::new().args(["--hive", &hive.url, "model", "download", REPO, MODEL]).run();
    out.assert_success();
    let ours = PathBuf::from(out.stdout.trim().trim_start_matches("✅ ").trim());
    assert!(ours.starts_with(&expected), "downloaded to {}\n{}", ours.display(), out.dump());

    // huggingface_hub, offline, with the same two variables: it finds the hive's file.
    let mut python = venv("python");
    python.envs(env).env("HF_HUB_OFFLINE", "1").args([
        "-c",
        "import sys\nfrom huggingface_hub import constants, hf_hub_download\n\
         print(constants.HF_HUB_CACHE)\nprint(hf_hub_download(sys.argv[1], sys.argv[2]))",
        REPO,
        MODEL,
    ]);
    let said = String::from_utf8(succeed(python).stdout).expect("utf-8");
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.first().map(PathBuf::from), Some(expected.clone()), "huggingface_hub's cache: {said}");
    assert_eq!(lines.get(1).map(PathBuf::from), Some(ours.clone()), "huggingface_hub's answer: {said}");
    assert_eq!(sha256_of(&ours), hub.sha256(REPO, MODEL));
    assert!(!home.path().join(".cache").exists(), "something wrote under ~/.cache");
}

const TREE_REPO: &str = "rbee-test/folders";

/// A hub with a repo of LFS and git files, some in folders.
fn hub_with_tree() -> crate::harness::FakeHub {
    let hub = crate::harness::FakeHub::start(crate::harness::HubConfig::default());
    let spec = crate::harness::RepoSpec::new(TREE_REPO)
        .lfs("model.gguf", 300 << 10)
        .text("config.json", 200)
        .text("tokenizer/vocab.txt", 1000)
        .lfs("weights/part-1.safetensors", 100 << 10);
    hub.add_repo(spec);
    hub
}

const TREE_FILES: [&str; 4] = ["config.json", "model.gguf", "tokenizer/vocab.txt", "weights/part-1.safetensors"];

/// Every file of [`TREE_REPO`] under `snapshot` has the hub's bytes.
#[track_caller]
fn assert_whole_snapshot(hub: &crate::harness::FakeHub, snapshot: &Path) {
    for file in TREE_FILES {
        let path = snapshot.join(file);
        assert!(path.is_file(), "{} missing from the snapshot", path.display());
        assert_eq!(sha256_of(&path), hub.sha256(TREE_REPO, file), "{file}");
    }
}

/// `snapshot_download` and `hf download org/repo` through `endpoint`, each into its own cache;
/// both must bring the whole repo.
fn both_clients_fetch_the_repo(hub: &crate::harness::FakeHub, endpoint: &str) {
    let cache = TempDir::new().expect("cache");
    let mut python = venv("python");
    python.env("HF_ENDPOINT", endpoint).env("HF_HUB_CACHE", cache.path()).args([
        "-c",
        "import sys\nfrom huggingface_hub import snapshot_download\nprint(snapshot_download(sys.argv[1]))",
        TREE_REPO,
    ]);
    let said = String::from_utf8(succeed(python).stdout).expect("utf-8");
    assert_whole_snapshot(hub, Path::new(said.trim()));

    let cache = TempDir::new().expect("cache");
    let mut hf = venv("hf");
    hf.env("HF_ENDPOINT", endpoint).env("HF_HUB_CACHE", cache.path()).args(["download", TREE_REPO]);
    let said = String::from_utf8(succeed(hf).stdout).expect("utf-8");
    // `✓ Downloaded` then `  path: <snapshot>`.
    let path = said.lines().find_map(|l| l.trim().strip_prefix("path:")).unwrap_or_else(|| panic!("no path: {said}"));
    assert_whole_snapshot(hub, Path::new(path.trim()));
}

#[test]
fn snapshot_download_and_hf_download_fetch_a_repo_through_the_mirror() {
    let hub = hub_with_tree();
    let hive = crate::harness::Hive::spawn(&hub);
    Keeper::new().hive(&hive).args(["model", "download", TREE_REPO, "--all"]).run().assert_success();
    let asked = hub.stats().requests.len();
    both_clients_fetch_the_repo(&hub, &format!("{}/hf", hive.url()));
    assert_eq!(hub.stats().requests.len(), asked, "the mirror without pull-through asked the hub");
}

#[test]
fn hf_download_pulls_a_repo_through_an_empty_mirror() {
    let hub = hub_with_tree();
    let mirror = crate::harness::Hive::builder().hub(&hub).arg("--mirror-upstream").spawn();
    both_clients_fetch_the_repo(&hub, &format!("{}/hf", mirror.url()));
    assert_whole_snapshot(&hub, &mirror.repo_dir(TREE_REPO).join("snapshots").join(hub.commit(TREE_REPO)));
}
