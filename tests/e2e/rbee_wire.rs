//! rbee's own wire, both ways, written from rbee's contract (jobs-contract, operations-contract,
//! job-client) and not from this workspace's types:
//!
//! - [`RbeeJobClient`] reads a stream exactly as rbee's `job-client` does: no `Accept` header,
//!   every line trimmed and stripped of `data: ` / `data:`, empty lines skipped, everything else
//!   handed over as a line of output, and the end at exactly `[DONE]`, `[CANCELLED]` or
//!   `[ERROR] <message>`. It drives the real hive; every handed line must be human text.
//! - [`StandIn`] answers as rbee's hive does (data-only narration, `ok` health, no job-status
//!   route, JSON 200 only where rbee has one); the real `rbee` binary downloads from it, fails on
//!   it and cancels on it.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::fixtures::{assert_published, hub_with_model, live_tasks, wait_for, MODEL, REPO};
use crate::harness::pty::Pty;
use crate::harness::{http, FakeHub, Hive, HubConfig, Keeper, Output, RepoSpec, TIMEOUT};
use crate::rbee_standin::StandIn;

/// How a stream ended for rbee's client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Done,
    Cancelled,
    Error(String),
    /// The body ended without a marker (rbee's client then returns Ok, which hides failures).
    NoMarker,
    /// A line that is no marker but holds one ended the stream (for a `contains` reader).
    Early(String),
}

/// rbee's job client, from its contract, ending as strictly as rbee's keeper (by `contains`).
struct RbeeJobClient {
    base: String,
}

impl RbeeJobClient {
    fn new(hive: &Hive) -> Self {
        Self { base: hive.url().to_owned() }
    }

    /// `POST /v1/jobs` with the operation; the body is read as `{job_id, sse_url}` whatever the
    /// status (rbee's client never looks at it).
    fn submit(&self, op: &Value) -> String {
        let body = op.to_string();
        let res = http::request("POST", &format!("{}/v1/jobs", self.base), &[], Some(body.as_bytes())).expect("POST");
        let reply = res.json();
        assert_eq!(
            reply["sse_url"].as_str(),
            reply["job_id"].as_str().map(|id| format!("/v1/jobs/{id}/stream")).as_deref(),
            "POST {op}: {} {}",
            res.status,
            res.text()
        );
        reply["job_id"].as_str().expect("job_id").to_owned()
    }

    /// Reads the job's stream as rbee's client does; `on_line` sees each handed line.
    fn stream(&self, job_id: &str, mut on_line: impl FnMut(&str)) -> (Vec<String>, End) {
        let url = format!("{}/v1/jobs/{job_id}/stream", self.base);
        let mut res = http::open("GET", &url, &[], None).expect("GET stream");
        assert_eq!(res.status, 200, "GET {url}");
        res.conn.set_read_timeout(Some(3 * TIMEOUT)).expect("timeout");
        let (mut lines, mut buffer, mut chunk) = (Vec::new(), Vec::new(), [0u8; 4096]);
        loop {
            let n = res.body.read(&mut chunk).expect("reading the stream (a reset is a failure here)");
            if n == 0 {
                return (lines, End::NoMarker);
            }
            buffer.extend_from_slice(&chunk[..n]);
            while let Some(pos) = buffer.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = buffer.drain(..=pos).collect();
                let Ok(line) = std::str::from_utf8(&raw) else { continue };
                let line = line.trim();
                let data = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")).unwrap_or(line);
                if data.is_empty() {
                    continue;
                }
                lines.push(data.to_owned());
                on_line(data);
                // rbee's keeper takes a line that *contains* `[DONE]` as the end (job_client.rs);
                // its job client ends on the exact markers. Any line holding one ends it here.
                let end = match data {
                    "[DONE]" => End::Done,
                    "[CANCELLED]" => End::Cancelled,
                    d if d.starts_with("[ERROR]") => End::Error(d.trim_start_matches("[ERROR]").trim().to_owned()),
                    d if ["[DONE]", "[CANCELLED]", "[ERROR]"].iter().any(|m| d.contains(m)) => End::Early(d.to_owned()),
                    _ => continue,
                };
                return (lines, end);
            }
        }
    }

    fn run(&self, op: &Value) -> (Vec<String>, End) {
        let id = self.submit(op);
        self.stream(&id, |_| {})
    }
}

/// Every handed line is human text: no SSE field, no JSON, no marker before the last line.
#[track_caller]
fn assert_human(lines: &[String]) {
    for (i, line) in lines.iter().enumerate() {
        let field = ["event:", "id:", "retry:", ":"].iter().any(|f| line.starts_with(f));
        assert!(!field, "an SSE field handed as a line: {line:?}\nall lines: {lines:#?}");
        assert!(
            !line.starts_with('{') && serde_json::from_str::<Value>(line).is_err(),
            "JSON handed as a line: {line:?}"
        );
        let marker = ["[DONE]", "[CANCELLED]", "[ERROR]"].iter().any(|m| line.contains(m));
        assert!(!marker || i + 1 == lines.len(), "an end marker before the last line: {lines:#?}");
    }
}

fn download(model: &str) -> Value {
    json!({ "operation": "model_download", "hive_id": "localhost", "model": model })
}

#[test]
fn rbee_client_downloads_a_verified_file_and_ends_with_done() {
    // 3 s of download at 1 MiB/s: the 1 s heartbeat says "still downloading" only once a
    // progress event was logged, so on a loaded machine, where the job may take most of a
    // second to start receiving, the download must outlast at least two beats.
    let hub = hub_with_model(3 << 20);
    hub.set_rate(1 << 20);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let (lines, end) = RbeeJobClient::new(&hive).run(&download(&format!("{REPO}:{MODEL}")));
    assert_eq!(end, End::Done, "{lines:#?}");
    assert_eq!(lines.last().map(String::as_str), Some("[DONE]"));
    assert_human(&lines);
    assert!(lines.iter().any(|l| l.starts_with("📥") && l.contains(MODEL)), "a 📥 line names the file: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains('%') && l.contains("MiB/s")), "a progress line: {lines:#?}");
    let beat = format!("⏳ Still downloading {MODEL} from HuggingFace...");
    assert!(lines.contains(&beat), "rbee's heartbeat wording `{beat}`: {lines:#?}");
    assert_published(&hive, &hub, MODEL);
    assert_eq!(live_tasks(&hive), 0, "job and heartbeat tasks are gone after [DONE]");
}

#[test]
fn rbee_client_sees_error_for_a_missing_file_and_unsupported_operations() {
    let hub = hub_with_model(1 << 20);
    let hive = Hive::spawn(&hub);
    let client = RbeeJobClient::new(&hive);
    let (lines, end) = client.run(&download(&format!("{REPO}:nope.gguf")));
    assert!(matches!(&end, End::Error(m) if m.contains("not found") && m.contains("nope.gguf")), "{end:?} {lines:#?}");
    assert_human(&lines);

    let (lines, end) = client.run(&json!({ "operation": "worker_spawn", "hive_id": "localhost", "model": "x" }));
    assert_eq!(end, End::Error("operation `worker_spawn` is not supported by this hive".into()), "{lines:#?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");

    // A body that is not an operation is refused with a JSON error, as before.
    let res =
        http::request("POST", &format!("{}/v1/jobs", hive.url()), &[], Some(br#"{"ModelList":{}}"#)).expect("POST");
    assert_eq!((res.status, res.json()["error"].as_str()), (400, Some("invalid_operation")), "{}", res.text());
}

#[test]
fn rbee_client_ctrl_c_cancels_the_job_on_the_hive() {
    let hub = hub_with_model(32 << 20);
    hub.set_rate(1 << 20);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let client = RbeeJobClient::new(&hive);
    let id = client.submit(&download(&format!("{REPO}:{MODEL}")));
    let reader = {
        let client = RbeeJobClient { base: client.base.clone() };
        let id = id.clone();
        std::thread::spawn(move || client.stream(&id, |_| {}))
    };
    hub.wait_for_connection(0, TIMEOUT).expect("a CDN connection");
    assert!(hub.wait_for_bytes(256 << 10, TIMEOUT), "the download is under way");
    let conn = hub.wait_for_connection(0, TIMEOUT).expect("the CDN connection, as it is now");
    assert!(conn.closed_at.is_none(), "the upstream connection is still open before the DELETE: {conn:?}");
    // rbee's keeper on Ctrl+C: DELETE /v1/jobs/{id} with a 2 s timeout.
    let sent = Instant::now();
    let res = http::request("DELETE", &format!("{}/v1/jobs/{id}", hive.url()), &[], None).expect("DELETE");
    assert!(sent.elapsed() < Duration::from_secs(2), "DELETE answered after rbee's 2 s timeout");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!((res.json()["job_id"].as_str(), res.json()["status"].as_str()), (Some(id.as_str()), Some("cancelled")));
    assert_eq!(live_tasks(&hive), 0, "the task was dropped before DELETE answered");
    assert!(hub.wait_closed(0, TIMEOUT).is_some(), "the upstream connection was closed");
    let (lines, end) = reader.join().expect("reader");
    assert_eq!(end, End::Cancelled, "{lines:#?}");
    assert_human(&lines);
    let unknown = http::request("DELETE", &format!("{}/v1/jobs/job-nope", hive.url()), &[], None).expect("DELETE");
    assert_eq!(unknown.status, 404);
}

#[test]
fn a_file_named_like_a_marker_does_not_end_rbees_stream() {
    let hub = FakeHub::start(HubConfig::default());
    let repo = "rbee-test/markers";
    let names = ["x[DONE].gguf", "y[CANCELLED].gguf", "[ERROR] z.gguf"];
    hub.add_repo(names.iter().fold(RepoSpec::new(repo), |spec, name| spec.lfs(name, 64 << 10)));
    let hive = Hive::spawn(&hub);
    let client = RbeeJobClient::new(&hive);
    for name in names {
        let (lines, end) = client.run(&download(&format!("{repo}:{name}")));
        assert_eq!(end, End::Done, "{name}: {lines:#?}");
        assert_human(&lines);
        let defused = name.replace('[', "\\u{5b}");
        assert!(lines.iter().any(|l| l.contains(&defused)), "the name is shown, defused: {lines:#?}");
        let snapshot = hive.repo_dir(repo).join("snapshots").join(hub.commit(repo));
        assert_eq!(std::fs::read(snapshot.join(name)).expect("the file"), hub.file_bytes(repo, name));
    }
    let (lines, end) = client.run(&download(&format!("{repo}:missing[DONE].gguf")));
    assert!(matches!(&end, End::Error(m) if m.contains("missing\\u{5b}DONE].gguf")), "{end:?} {lines:#?}");
}

#[test]
fn a_bare_repo_fetches_the_q4_k_m_gguf_and_says_so() {
    let hub = FakeHub::start(HubConfig::default());
    let repo = "rbee-test/tiny-GGUF";
    hub.add_repo(
        RepoSpec::new(repo)
            .lfs("tiny.Q8_0.gguf", 300 << 10)
            .lfs("tiny.Q4_K_M.gguf", 200 << 10)
            .lfs("tiny.Q5_K_M.gguf", 250 << 10)
            .text("README.md", 64),
    );
    hub.add_repo(RepoSpec::new("rbee-test/no-gguf").lfs("model.safetensors", 1 << 10));
    let hive = Hive::spawn(&hub);
    let client = RbeeJobClient::new(&hive);
    let (lines, end) = client.run(&download(repo));
    assert_eq!(end, End::Done, "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("picked `tiny.Q4_K_M.gguf`")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("tiny.Q8_0.gguf") && l.contains("tiny.Q5_K_M.gguf")), "{lines:#?}");
    let snapshot = hive.repo_dir(repo).join("snapshots").join(hub.commit(repo));
    let got = std::fs::read(snapshot.join("tiny.Q4_K_M.gguf")).expect("the Q4_K_M file");
    assert_eq!(got, hub.file_bytes(repo, "tiny.Q4_K_M.gguf"));
    assert!(!snapshot.join("tiny.Q8_0.gguf").exists(), "only the picked file");

    let (lines, end) = client.run(&download("rbee-test/no-gguf"));
    assert!(matches!(&end, End::Error(m) if m.contains("no GGUF file") && m.contains("--all")), "{end:?} {lines:#?}");
}

#[test]
fn model_list_get_delete_and_health_speak_rbees_text() {
    let hub = hub_with_model(1 << 20);
    let hive = Hive::spawn(&hub);
    let client = RbeeJobClient::new(&hive);
    assert_eq!(client.run(&download(&format!("{REPO}:{MODEL}"))).1, End::Done);
    let (lines, end) = client.run(&json!({ "operation": "model_list", "hive_id": "localhost" }));
    assert_eq!(end, End::Done);
    assert_human(&lines);
    assert!(lines.iter().any(|l| l.starts_with(&format!("📦 {REPO}"))) && lines.iter().any(|l| l.starts_with(MODEL)));
    let id = format!("{REPO}:{MODEL}");
    let (lines, end) = client.run(&json!({ "operation": "model_get", "hive_id": "localhost", "id": id }));
    assert_eq!(end, End::Done, "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with(MODEL)), "{lines:#?}");
    let (lines, end) = client.run(&json!({ "operation": "model_delete", "hive_id": "localhost", "id": id }));
    assert_eq!(end, End::Done, "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("removed")), "{lines:#?}");
    let (_, end) = client.run(&json!({ "operation": "model_get", "hive_id": "localhost", "id": id }));
    assert!(matches!(&end, End::Error(m) if m.contains("not in the cache")), "{end:?}");
    let (lines, end) = client.run(&json!({ "operation": "hive_check", "alias": "localhost" }));
    assert_eq!(end, End::Done, "{lines:#?}");

    let health = http::get(&format!("{}/health", hive.url()));
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));
    let json = http::request("GET", &format!("{}/health", hive.url()), &[("Accept", "application/json")], None)
        .expect("health");
    assert_eq!(json.json()["status"], "ok");
}

fn keeper_at(stand_in: &StandIn) -> Keeper {
    Keeper::new().args(["--hive", stand_in.url.as_str()])
}

/// Nothing of rbee's ANSI headers or escaped line breaks reaches the user.
#[track_caller]
fn assert_clean(out: &Output) {
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains('\u{1b}'), "a raw ESC\n{}", out.dump());
        assert!(!text.contains("\\u{1b}") && !text.contains("\\u{a}"), "escaped formatting shown\n{}", out.dump());
        assert!(!text.contains("job_server::"), "a narration header without -v\n{}", out.dump());
    }
}

#[test]
fn this_keeper_downloads_lists_and_gets_on_rbees_hive() {
    let stand_in = StandIn::start();
    let model = "org/m:ok.gguf";
    let path = stand_in.catalog_path(model);
    assert!(path.contains("/.cache/rbee/models/"), "rbee's catalog, not the HF cache: {path}");
    let out = keeper_at(&stand_in).args(["model", "download", model]).run();
    out.assert_success().assert_stderr_contains(&format!("📥 Downloading model '{model}' on hive 'localhost'"));
    out.assert_stderr_contains(&format!("✅ Model '{model}' downloaded and added to catalog"));
    assert_eq!(out.stdout.trim(), format!("✅ {path}"), "the path, asked of the hive\n{}", out.dump());
    assert_clean(&out);
    assert!(!out.stderr.contains("[DONE]") && !out.stdout.contains("[DONE]"), "markers are not shown\n{}", out.dump());
    let posted = stand_in.seen().posts[0].clone();
    assert_eq!((posted["operation"].as_str(), posted["hive_id"].as_str()), (Some("model_download"), Some("localhost")));
    assert_eq!(posted["model"], model, "rbee's `model` form: {posted}");
    assert_eq!(stand_in.seen().posts[1]["operation"], "model_list", "the path came from a model_list");

    let out = keeper_at(&stand_in).args(["model", "list"]).run();
    out.assert_success().assert_stdout_contains(model).assert_stdout_contains(&path);
    out.assert_stdout_contains("96.0 MiB");
    out.assert_stderr_contains("📋 Listing models on hive 'localhost'");
    assert_clean(&out);
    let out = keeper_at(&stand_in).args(["--json", "model", "list"]).run();
    out.assert_success();
    let listed: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}\n{}", out.dump()));
    assert_eq!((listed["models"][0]["id"].as_str(), listed["models"][0]["path"].as_str()), (Some(model), Some(&*path)));
    assert_clean(&out);

    let out = keeper_at(&stand_in).args(["model", "get", model]).run();
    out.assert_success().assert_stdout_contains(&path);
    assert_clean(&out);
    let out = keeper_at(&stand_in).args(["-v", "model", "get", model]).run();
    out.assert_success().assert_stderr_contains("rbee_hive::operations::model::handle_model_get model_get_found");
    assert!(!out.stderr.contains('\u{1b}'), "off a terminal the header is plain\n{}", out.dump());

    let out = keeper_at(&stand_in).args(["model", "download", model]).run();
    out.assert_code(1).assert_stderr_contains(&format!("Model '{model}' already exists"));
    let out = keeper_at(&stand_in).args(["--json", "model", "download", "org/m:json.gguf"]).run();
    out.assert_success().assert_stdout_contains("Downloading model 'org/m:json.gguf'");
    assert_clean(&out);
}

#[test]
fn this_keeper_fails_and_cancels_on_rbees_hive() {
    let stand_in = StandIn::start();
    let out = keeper_at(&stand_in).args(["model", "download", "org/m:fail.gguf"]).run();
    out.assert_code(1).assert_stderr_contains("Model not found: no such file in the repo");
    assert_clean(&out);

    let keeper = keeper_at(&stand_in).args(["model", "download", "org/m:slow.gguf"]).spawn();
    keeper
        .wait_for_stderr(TIMEOUT, |l| l.starts_with("⏳ Still downloading slow.gguf (") && l.ends_with("complete)..."));
    keeper.send_sigint();
    let out = keeper.wait();
    out.assert_code(130).assert_stderr_contains("🛑 Cancelling operation...");
    out.assert_stderr_contains("🛑 Operation cancelled by user");
    assert_clean(&out);
    let job = stand_in.seen().jobs_of("org/m:slow.gguf");
    assert_eq!(stand_in.seen().deletes, std::slice::from_ref(&job), "the DELETE reached rbee's hive");
    let again = http::request("DELETE", &format!("{}/v1/jobs/{job}", stand_in.url), &[], None).expect("DELETE");
    assert_eq!((again.status, again.text()), (404, format!("Job {job} not found or cannot be cancelled")));

    let out = keeper_at(&stand_in).args(["hive", "status"]).run();
    out.assert_success().assert_stdout_contains("ok (it answers as rbee's hive does");
    // A command that needs this hive's own routes says so instead of "not found".
    let out = keeper_at(&stand_in).args(["job", "list"]).run();
    out.assert_code(1).assert_stderr_contains("needs rbee-smol's hive extensions");
    let out = keeper_at(&stand_in).args(["job", "status", &job]).run();
    out.assert_code(1).assert_stderr_contains("needs rbee-smol's hive extensions");
    let status = http::get(&format!("{}/v1/jobs/{job}", stand_in.url));
    assert_eq!(status.status, 405, "rbee's hive has no job-status route");

    // A bad operation is accepted (200) and fails on the stream, as rbee's job router does.
    let res = http::request("POST", &format!("{}/v1/jobs", stand_in.url), &[], Some(br#"{"operation":"nope"}"#))
        .expect("POST");
    assert_eq!(res.status, 200, "{}", res.text());
    let stream = http::get(&format!("{}{}", stand_in.url, res.json()["sse_url"].as_str().expect("sse_url")));
    let last = stream.text().trim_end().lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("data: [ERROR] Failed to parse operation: unknown variant `nope`"), "{}", stream.text());
}

#[test]
fn the_seed_manual_test_reads_as_the_seed_says() {
    // `rbee model download` with no argument fetches rbee's default model, narrates a 📥 line
    // naming the file and rbee's heartbeats, and Ctrl+C prints both 🛑 lines and exits 130.
    let hub = FakeHub::start(HubConfig::default());
    let (repo, file) = rbee_protocol::DEFAULT_MODEL.split_once(':').expect("org/repo:file");
    hub.add_repo(RepoSpec::new(repo).lfs(file, 64 << 20));
    hub.set_rate(1 << 20);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let keeper = Keeper::new().hive(&hive).args(["model", "download"]).spawn();
    keeper.wait_for_stderr(TIMEOUT, |l| l.starts_with("📥") && l.contains(file));
    keeper.wait_for_stderr(TIMEOUT, |l| l.contains(&format!("Still downloading {file} from HuggingFace...")));
    keeper.send_sigint();
    let out = keeper.wait();
    out.assert_code(130);
    let (a, b) = (out.stderr.find("🛑 Cancelling operation..."), out.stderr.find("🛑 Operation cancelled by user"));
    assert!(matches!((a, b), (Some(a), Some(b)) if a < b), "both lines in order\n{}", out.dump());
    wait_for(&hive, TIMEOUT, "no live task", || live_tasks(&hive) == 0);
}

#[test]
fn on_a_terminal_v_shows_rbees_headers_dimmed() {
    let stand_in = StandIn::start();
    let pty = Pty::spawn(&keeper_at(&stand_in).args(["-v", "model", "list"]));
    let out = pty.wait();
    out.assert_code(0);
    let header = "\u{1b}[2mjob_server::execution::execute_and_stream execute\u{1b}[0m";
    assert!(out.raw.contains(header), "the header, dimmed\n{}", out.dump());
    assert!(!out.raw.contains("\u{1b}[1m"), "rbee's own colours are stripped\n{}", out.dump());
    let pty = Pty::spawn(&keeper_at(&stand_in).args(["model", "list"]));
    let out = pty.wait();
    out.assert_code(0);
    assert!(!out.text().contains("job_server::"), "no header without -v\n{}", out.dump());
    assert!(out.text().contains("Found 0 model(s)"), "{}", out.dump());
}
