//! `HF_TOKEN` goes to the hub endpoint as a Bearer token and nowhere else: never to the CDN
//! (another origin), never into an event, the hive log, the keeper's output, a job status or an
//! error message — also when the hub refuses it.

use rbee_protocol::sse::Frame;
use serde_json::json;

use crate::harness::{FakeHub, Hive, HubConfig, Keeper, RepoSpec, TIMEOUT};

const REPO: &str = "rbee-test/gated-model";
const TOKEN: &str = "hf_SeCrEt0123456789abcdefTOKEN";

fn gated_hub() -> FakeHub {
    let hub = FakeHub::start(HubConfig { token: Some(TOKEN.into()), ..HubConfig::default() });
    hub.add_repo(RepoSpec::demo(REPO, 2 << 20).text("tok/tokenizer.json", 300).gated());
    hub
}

/// Every frame of a job as its JSON text, up to the terminal one.
fn frames_text(frames: &[Frame]) -> String {
    frames.iter().map(|f| format!("{}\n", serde_json::to_string(&f.event).expect("event json"))).collect()
}

/// The token is in none of the hive's answers about jobs and models, nor in its log.
#[track_caller]
fn assert_hive_keeps_the_secret(hive: &Hive, secret: &str) {
    for path in ["/v1/jobs", "/v1/models", "/health"] {
        let (_, body) = hive.get(path);
        assert!(!body.to_string().contains(secret), "token in GET {path}: {body}");
    }
    let (_, jobs) = hive.get("/v1/jobs");
    for job in jobs.as_array().into_iter().flatten().chain(jobs["jobs"].as_array().into_iter().flatten()) {
        let id = job["job_id"].as_str().unwrap_or_default();
        let (_, body) = hive.get(&format!("/v1/jobs/{id}"));
        assert!(!body.to_string().contains(secret), "token in GET /v1/jobs/{id}: {body}");
    }
    assert!(!hive.log().contains(secret), "token in the hive log:\n{}", hive.log());
}

#[test]
fn token_reaches_the_hub_but_never_the_cdn_nor_any_output() {
    let hub = gated_hub();
    let hive = Hive::builder().hub(&hub).hf_token(TOKEN).spawn();
    // Over HTTP: a single LFS file, every event read.
    let id = hive.start_download(REPO, "model.gguf");
    let frames = hive.sse(&id).until_terminal(3 * TIMEOUT);
    let text = frames_text(&frames);
    assert!(text.contains("\"kind\":\"done\""), "download failed: {text}\n{}", hive.log());
    assert!(!text.contains(TOKEN), "token in an event: {text}");
    // Through the keeper: the whole repo (listing + LFS + plain files), plain and as NDJSON.
    for json in [false, true] {
        let mut keeper = Keeper::new().hive(&hive).args(["model", "download", REPO, "--all"]);
        if json {
            keeper = keeper.arg("--json");
        }
        let out = keeper.env("HF_TOKEN", TOKEN).run();
        out.assert_success().assert_nowhere(TOKEN);
    }
    let snapshot = hive.repo_dir(REPO).join("snapshots").join(hub.commit(REPO));
    for file in ["model.gguf", "config.json", "tok/tokenizer.json"] {
        assert!(snapshot.join(file).is_file(), "{file} not downloaded\n{}", hive.log());
    }
    let stats = hub.stats();
    assert!(!stats.requests.is_empty());
    for r in &stats.requests {
        let want = format!("Bearer {TOKEN}");
        assert_eq!(r.header("authorization"), Some(want.as_str()), "hub request without the token: {r:?}");
    }
    assert!(stats.requests.iter().any(|r| r.path.starts_with("/api/models/")), "the listing carried the token");
    assert!(!stats.connections.is_empty(), "the LFS file came from the CDN");
    for c in &stats.connections {
        assert_eq!(c.authorization, None, "CDN connection {} got an Authorization header", c.id);
        assert!(!c.mentions(TOKEN), "the token reached the CDN (request line, query or a header): {c:?}");
    }
    assert_hive_keeps_the_secret(&hive, TOKEN);
}

#[test]
fn a_refused_token_never_appears_in_the_error() {
    let wrong = "hf_WrOnG9876543210zyxwvuTOKEN";
    let hub = gated_hub();
    let hive = Hive::builder().hub(&hub).hf_token(wrong).spawn();
    let id = hive.start_download(REPO, "model.gguf");
    let frames = hive.sse(&id).until_terminal(3 * TIMEOUT);
    let text = frames_text(&frames);
    assert!(text.contains("\"kind\":\"error\"") && text.contains("HF_TOKEN"), "expected an HF_TOKEN error: {text}");
    assert!(!text.contains(wrong), "token in an event: {text}");
    for args in [vec!["model", "download", REPO, "model.gguf"], vec!["model", "download", REPO, "--json"]] {
        let out = Keeper::new().hive(&hive).args(args).run();
        out.assert_code(1).assert_nowhere(wrong);
    }
    let op = json!({ "operation": "model_download", "hive_id": "localhost", "model": REPO, "all": true });
    let (status, body) = hive.post_job(&op);
    assert_eq!(status, 200, "{status} {body}");
    let frames = hive.sse(body["job_id"].as_str().expect("job_id")).until_terminal(3 * TIMEOUT);
    assert!(!frames_text(&frames).contains(wrong));
    assert!(hub.stats().requests.iter().all(|r| r.status == 403), "the hub refused every request");
    assert!(hub.connections().is_empty(), "nothing reached the CDN");
    assert_hive_keeps_the_secret(&hive, wrong);
}
