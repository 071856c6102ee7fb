//! A hive's cache as a HuggingFace endpoint (`HF_ENDPOINT=<hive>/hf`): the routes answer with the
//! hub's headers (Range, 416, 404 + `X-Error-Code`, the token rule), the real huggingface_hub and
//! a second hive download from them byte-identical, a download from a mirror resumes after a
//! cancel, and with `--mirror-upstream` three hives behind one mirror cost the hub one download.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use rbee_protocol::sse::Frame;
use rbee_protocol::Event;
use rbee_tests::hub::Stats;

use crate::harness::fixtures::{file_len, incomplete, sha256_of, wait_for, wait_status, MODEL, REPO};
use crate::harness::python::python;
use crate::harness::{http, FakeHub, Hive, HubConfig, Keeper, RepoSpec, TIMEOUT};

const TOKEN: &str = "mirror-secret-token-0123";

/// A hub with [`REPO`] holding a `size`-byte [`MODEL`] (and `config.json`), at `rate` bytes/s.
fn hub(size: u64, rate: u64) -> FakeHub {
    let hub = FakeHub::start(HubConfig { rate, ..HubConfig::default() });
    hub.add_repo(RepoSpec::demo(REPO, size));
    hub
}

/// `<hive>/hf`, the `HF_ENDPOINT` of its clients.
fn endpoint(hive: &Hive) -> String {
    format!("{}/hf", hive.url())
}

/// Has `hive` download `file` of [`REPO`] through a job (works with a token hive too).
#[track_caller]
fn cache(hive: &Hive, file: &str) {
    let op = json!({"operation": "model_download", "hive_id": "localhost", "model": format!("{REPO}:{file}")});
    let (status, body) = hive.post_job(&op);
    assert_eq!(status, 200, "{body}");
    wait_status(hive, body["job_id"].as_str().expect("job_id"), "completed");
}

/// A request to the mirror of `hive` (`path` after `/hf`), with its token if it has one.
#[track_caller]
fn ask(hive: &Hive, method: &str, path: &str, headers: &[(&str, &str)]) -> http::Response {
    let url = format!("{}{path}", endpoint(hive));
    let bearer = hive.bearer();
    let mut all = headers.to_vec();
    if let Some(b) = &bearer {
        all.push(("Authorization", b));
    }
    http::request(method, &url, &all, None).unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", hive.log()))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn resolve_answers_with_the_hubs_headers_ranges_and_error_codes() {
    let hub = hub(1 << 20, 0);
    let hive = Hive::spawn(&hub);
    cache(&hive, MODEL);
    let (sha, commit, size) = (hub.sha256(REPO, MODEL), hub.commit(REPO), 1u64 << 20);
    let path = format!("/{REPO}/resolve/main/{MODEL}");
    let head = ask(&hive, "HEAD", &path, &[]);
    assert_eq!(head.status, 200, "{head:?}");
    let quoted = format!("\"{sha}\"");
    for (name, want) in [
        ("x-repo-commit", commit.as_str()),
        ("x-linked-etag", quoted.as_str()),
        ("etag", quoted.as_str()),
        ("x-linked-size", &size.to_string()),
        ("content-length", &size.to_string()),
        ("accept-ranges", "bytes"),
        ("cache-control", "no-cache"),
    ] {
        assert_eq!(head.header(name), Some(want), "{name}: {:?}", head.headers);
    }
    let whole = ask(&hive, "GET", &path, &[]);
    assert_eq!((whole.status, whole.body.len() as u64, sha256(&whole.body)), (200, size, sha.clone()));
    let by_commit = ask(&hive, "GET", &format!("/{REPO}/resolve/{commit}/{MODEL}"), &[]);
    assert_eq!((by_commit.status, sha256(&by_commit.body)), (200, sha.clone()));
    assert_eq!(by_commit.header("cache-control"), Some("public, max-age=31536000, immutable"));

    let part = ask(&hive, "GET", &path, &[("Range", "bytes=1000-1999")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some(format!("bytes 1000-1999/{size}").as_str()));
    assert_eq!(part.body, whole.body[1000..2000]);
    let tail = ask(&hive, "GET", &path, &[("Range", "bytes=-10")]);
    assert_eq!((tail.status, tail.body.as_slice()), (206, &whole.body[whole.body.len() - 10..]));
    let beyond = ask(&hive, "GET", &path, &[("Range", &format!("bytes={size}-"))]);
    assert_eq!(beyond.status, 416, "{}", beyond.text());
    assert_eq!(beyond.header("content-range"), Some(format!("bytes */{size}").as_str()));
    let cached = ask(&hive, "GET", &path, &[("If-None-Match", &quoted)]);
    assert_eq!((cached.status, cached.body.len()), (304, 0));

    let missing = [
        ("/rbee-test/nope/resolve/main/model.gguf", "RepoNotFound", "model_not_found"),
        (&format!("/{REPO}/resolve/dev/{MODEL}"), "RevisionNotFound", "revision_not_found"),
        (&format!("/{REPO}/resolve/{}/{MODEL}", "d".repeat(40)), "RevisionNotFound", "revision_not_found"),
        (&format!("/{REPO}/resolve/main/config.json"), "EntryNotFound", "file_not_found"),
    ];
    for (path, hub_code, code) in missing {
        for method in ["HEAD", "GET"] {
            let res = ask(&hive, method, path, &[]);
            assert_eq!((res.status, res.header("x-error-code")), (404, Some(hub_code)), "{method} {path}");
        }
        assert_eq!(ask(&hive, "GET", path, &[]).json()["error"], code, "{path}");
    }
    let escape = ask(&hive, "GET", &format!("/{REPO}/resolve/main/..%2F..%2Fetc%2Fpasswd"), &[]);
    assert_eq!((escape.status, escape.json()["error"].as_str()), (400, Some("invalid_name")), "{}", escape.text());
    let post = http::request(
        "POST",
        &format!("{}{path}", endpoint(&hive)),
        &[("Content-Type", "application/json")],
        Some(b"{}"),
    )
    .expect("POST");
    assert_eq!((post.status, post.header("allow")), (405, Some("GET, HEAD")));
}

#[test]
fn api_models_lists_the_cached_revision() {
    let hub = hub(64 << 10, 0);
    let hive = Hive::spawn(&hub);
    cache(&hive, MODEL);
    for path in [format!("/api/models/{REPO}"), format!("/api/models/{REPO}/revision/main")] {
        let res = ask(&hive, "GET", &path, &[]);
        assert_eq!(res.status, 200, "{}", res.text());
        let body = res.json();
        assert_eq!(body["sha"], hub.commit(REPO));
        assert_eq!(body["siblings"], json!([{ "rfilename": MODEL }]));
    }
    let res = ask(&hive, "GET", &format!("/api/models/{REPO}/revision/v9"), &[]);
    assert_eq!((res.status, res.header("x-error-code")), (404, Some("RevisionNotFound")));
}

#[test]
fn the_mirror_keeps_the_hives_token() {
    let hub = hub(64 << 10, 0);
    let hive = Hive::builder().hub(&hub).token(TOKEN).spawn();
    cache(&hive, MODEL);
    let url = format!("{}/{REPO}/resolve/main/{MODEL}", endpoint(&hive));
    let refused = http::request("GET", &url, &[], None).expect("GET");
    assert_eq!((refused.status, refused.header("www-authenticate")), (401, Some("Bearer")));
    assert_eq!(ask(&hive, "GET", &format!("/{REPO}/resolve/main/{MODEL}"), &[]).status, 200);
}

/// `hf_hub_download(REPO, file)` with `HF_ENDPOINT=<endpoint>` and `HF_TOKEN=<token>` into `cache`;
/// the path it returned.
#[track_caller]
fn hf_hub_download(endpoint: &str, token: &str, cache: &Path, file: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/interop/hf.py");
    let home = TempDir::new().expect("HF_HOME");
    let asks = json!([{ "repo": REPO, "file": file, "revision": null, "offline": false }]);
    let mut cmd = Command::new(python());
    cmd.arg(&script).arg(asks.to_string());
    for var in ["HF_HUB_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"] {
        cmd.env_remove(var);
    }
    cmd.env("HF_ENDPOINT", endpoint)
        .env("HF_TOKEN", token)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", home.path())
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .stdin(Stdio::null());
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e} (run `just py`)"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "huggingface_hub failed: {cmd:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}");
    let paths: Vec<PathBuf> = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    paths.into_iter().next().expect("one path")
}

/// The hive's token doubles as the client's `HF_TOKEN`; huggingface_hub gets the same bytes, the
/// same commit and the same blob name, and the hub hears nothing of it.
#[test]
fn huggingface_hub_downloads_from_a_hives_mirror() {
    let hub = hub(4 << 20, 0);
    let hive = Hive::builder().hub(&hub).token(TOKEN).spawn();
    cache(&hive, MODEL);
    cache(&hive, "config.json");
    let before = hub.stats();
    let client = TempDir::new().expect("client cache");
    for file in [MODEL, "config.json"] {
        let path = hf_hub_download(&endpoint(&hive), TOKEN, client.path(), file);
        let snapshot = client.path().join(format!("models--{}", REPO.replace('/', "--"))).join("snapshots");
        assert_eq!(path, snapshot.join(hub.commit(REPO)).join(file));
        assert_eq!(sha256_of(&path), hub.sha256(REPO, file), "{file}");
        let blob = std::fs::canonicalize(&path).expect("blob");
        let etag = hub.file_info(REPO, "main", file).expect("file").etag;
        assert!(blob.ends_with(format!("blobs/{etag}")), "{}", blob.display());
    }
    let after = hub.stats();
    assert_eq!(after.requests.len(), before.requests.len(), "the mirror asked the hub");
    assert_eq!(after.connections.len(), before.connections.len());
}

/// `hive`'s snapshot of [`MODEL`] has the hub's bytes.
#[track_caller]
fn assert_intact(hive: &Hive, hub: &FakeHub) {
    let path = hive.repo_dir(REPO).join("snapshots").join(hub.commit(REPO)).join(MODEL);
    assert_eq!(sha256_of(&path), hub.sha256(REPO, MODEL));
}

/// The job whose `frames` these are ended `done`, with [`MODEL`] intact.
#[track_caller]
fn assert_done_and_intact(hive: &Hive, hub: &FakeHub, frames: &[Frame]) {
    assert!(matches!(frames.last().map(|f| &f.event), Some(Event::Done { .. })), "{frames:#?}\n{}", hive.log());
    assert_intact(hive, hub);
}

/// The hub served the file once: one CDN connection, `size` bytes, all of them closed.
#[track_caller]
fn assert_one_download(hub: &FakeHub, size: u64) -> Stats {
    assert!(hub.wait_all_closed(TIMEOUT));
    let stats = hub.stats();
    assert_eq!((stats.connections.len(), stats.cdn_bytes), (1, size), "{:#?}", stats.connections);
    stats
}

/// A second hive with `HF_ENDPOINT=<first>/hf` downloads (through the keeper) from the first,
/// in parallel parts (the mirror answers `Range`).
#[test]
fn a_second_hive_downloads_from_the_first_hives_mirror() {
    let hub = hub(24 << 20, 0);
    let first = Hive::spawn(&hub);
    cache(&first, MODEL);
    let before = hub.stats();
    let second = Hive::builder().endpoint(&endpoint(&first)).spawn();
    let out = Keeper::new().hive(&second).args(["model", "download", REPO, MODEL]).run();
    out.assert_success().assert_stderr_contains(&format!("🔀 fetching `{MODEL}` in parts:"));
    assert_intact(&second, &hub);
    assert_eq!(hub.stats().requests.len(), before.requests.len(), "the hub was asked again");
}

/// Through a pull-through mirror fed by a slow hub: the second hive's download (one stream, so
/// the partial is the `.incomplete`; parts resume the same way, see `parallel.rs`) is cancelled
/// midway, and the next one resumes from its `.incomplete` with a `Range` the mirror answers.
#[test]
fn a_download_from_a_mirror_resumes_after_a_cancel() {
    const SIZE: u64 = 16 << 20;
    let hub = hub(SIZE, 4 << 20);
    let mirror = Hive::builder().hub(&hub).arg("--mirror-upstream").spawn();
    let second = Hive::builder().endpoint(&endpoint(&mirror)).arg("--max-parts").arg("1").spawn();
    let id = second.start_download(REPO, MODEL);
    let part = incomplete(&second, &hub, MODEL);
    wait_for(&second, 3 * TIMEOUT, "2 MiB in the .incomplete", || file_len(&part) >= 2 << 20);
    let (status, body) = second.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    let kept = file_len(&part);
    assert!((2 << 20..SIZE).contains(&kept), "partial kept after cancel: {kept} bytes");
    hub.set_rate(0);
    let id = second.start_download(REPO, MODEL);
    let frames = second.sse(&id).until_terminal(3 * TIMEOUT);
    let resumed = frames
        .iter()
        .any(|f| matches!(&f.event, Event::Narration { message } if message.contains(&format!("from byte {kept}"))));
    assert!(resumed, "no resume from byte {kept}: {frames:#?}\n{}", second.log());
    assert_done_and_intact(&second, &hub, &frames);
    assert_one_download(&hub, SIZE);
}

/// Three hives ask a pull-through mirror for the same file at once: one job of the mirror
/// downloads it once from the hub, and all three get verified copies while it does.
#[test]
fn three_hives_behind_a_pull_through_mirror_cost_one_download() {
    const SIZE: u64 = 8 << 20;
    let hub = hub(SIZE, 8 << 20);
    let mirror = Hive::builder().hub(&hub).arg("--mirror-upstream").spawn();
    let hives: Vec<Hive> = (0..3).map(|_| Hive::builder().endpoint(&endpoint(&mirror)).spawn()).collect();
    let jobs: Vec<String> = hives.iter().map(|h| h.start_download(REPO, MODEL)).collect();
    for (hive, id) in hives.iter().zip(&jobs) {
        assert_done_and_intact(hive, &hub, &hive.sse(id).until_terminal(6 * TIMEOUT));
    }
    let stats = assert_one_download(&hub, SIZE);
    // And the mirror kept it: a fourth asks nothing of the hub.
    let requests = stats.requests.len();
    let late = Hive::builder().endpoint(&endpoint(&mirror)).spawn();
    Keeper::new().hive(&late).args(["model", "download", REPO, MODEL]).run().assert_success();
    assert_eq!(hub.stats().requests.len(), requests);
}
