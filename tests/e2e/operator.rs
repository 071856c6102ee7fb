//! Living with a hive as an operator (issue 18): settings the running hive ignores are named, each
//! way of failing to reach a hive has its own message, concurrent keepers start one hive, the hive
//! log tells each job's end, the terminal shows retries, and a closed stdout ends the keeper.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::harness::pty::Pty;
use crate::harness::{free_port, http, FakeHub, Fault, Hive, Keeper, LocalHive, TIMEOUT};

const REPO: &str = "rbee-test/tiny-model";
const TOKEN: &str = "hf_operator_secret_4711";

#[test]
fn a_running_hive_with_other_hf_settings_is_named_and_restarted() {
    let hub = FakeHub::with_default_repo();
    let local = LocalHive::new(&hub);
    local.keeper().args(["hive", "start"]).run().assert_success();
    let health = local.health();
    assert_eq!(health["token_set"], false, "{health}");
    assert!(health["endpoint"].as_str().is_some_and(|e| e.starts_with(hub.endpoint())), "{health}");
    // rbee's form stays: a plain GET answers `ok`.
    let plain = http::request("GET", &format!("http://{}/health", local.addr), &[], None).unwrap();
    assert_eq!((plain.status, plain.text().as_str()), (200, "ok"));

    // Same settings: not a word.
    local.keeper().args(["model", "list"]).run().assert_success().assert_nowhere("⚠️");

    let other = TempDir::new().unwrap();
    let moved = || local.keeper().env("HF_HUB_CACHE", other.path()).env("HF_TOKEN", TOKEN);
    let out = moved().args(["model", "list"]).run();
    out.assert_success()
        .assert_stderr_contains("runs with other HF settings than this shell")
        .assert_stderr_contains(&format!("HF_HUB_CACHE / HF_HOME: hive {}", local.cache.path().display()))
        .assert_stderr_contains(&format!("here {}", other.path().display()))
        .assert_stderr_contains("HF_TOKEN: hive not set, here set")
        .assert_stderr_contains("`rbee hive restart`")
        .assert_stderr_contains("`rbee hive stop`")
        .assert_nowhere("HF_ENDPOINT")
        .assert_nowhere(TOKEN);

    let pid = health["pid"].as_u64();
    moved().args(["hive", "restart"]).run().assert_success().assert_nowhere(TOKEN);
    let health = local.health();
    assert_ne!(health["pid"].as_u64(), pid, "a new hive: {health}");
    assert_eq!(health["token_set"], true, "{health}");
    let cache = std::fs::canonicalize(other.path()).unwrap();
    assert_eq!(health["cache_dir"].as_str().map(std::path::PathBuf::from), Some(cache), "{health}");
    assert!(!health.to_string().contains(TOKEN));
    moved().args(["model", "list"]).run().assert_success().assert_nowhere("⚠️");
    assert!(!local.log().contains(TOKEN), "the hive log shows the token:\n{}", local.log());
}

/// Answers every request with an HTML 404, as a web server on the hive's port would.
fn html_server() -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "<html><body><h1>404 Not Found</h1>nginx secret page</body></html>";
            let head = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
        }
    });
    (addr, server)
}

#[test]
fn another_program_on_the_port_is_named_not_dumped() {
    let (addr, _server) = html_server();
    let home = TempDir::new().unwrap();
    let keeper = || Keeper::new().env("RBEE_HIVE_ADDR", &addr).env("XDG_CACHE_HOME", home.path());
    let expected = format!(
        "something else answers on {addr} (HTTP 404, text/html); is another program using the port? set RBEE_HIVE_ADDR"
    );
    for args in [&["job", "list"][..], &["model", "list"]] {
        let out = keeper().args(args.iter().copied()).run();
        out.assert_code(2).assert_stderr_contains(&expected).assert_nowhere("nginx").assert_nowhere("<html");
        out.assert_nowhere("started local hive").assert_nowhere("exited while starting");
    }
}

#[test]
fn each_way_of_not_reaching_a_hive_has_its_message() {
    let hub = FakeHub::with_default_repo();
    let hive = Hive::spawn(&hub);
    // TLS to a plain-HTTP hive: a handshake nobody answers, cut at the 5 s connect timeout.
    let https = hive.url().replace("http://", "https://");
    let started = Instant::now();
    let out = Keeper::new().args(["--hive", &https, "job", "list"]).run();
    out.assert_code(2).assert_stderr_contains("TLS").assert_stderr_contains("use http://");
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}\n{}", started.elapsed(), out.dump());

    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = Keeper::new().args(["--hive", &closed, "job", "list"]).run();
    out.assert_code(2).assert_stderr_contains(&format!("cannot reach the hive at {closed}: connection refused"));

    let out = Keeper::new().args(["--hive", "http://no-such-hive.invalid:7835", "job", "list"]).run();
    out.assert_code(2).assert_stderr_contains("does not resolve").assert_stderr_contains("check the host name");
}

#[test]
fn concurrent_keepers_start_one_hive() {
    let hub = FakeHub::with_default_repo();
    let local = LocalHive::new(&hub);
    let keepers: Vec<_> = (0..3).map(|_| local.keeper().args(["model", "list"]).spawn()).collect();
    let outs: Vec<_> = keepers.into_iter().map(|k| k.wait()).collect();
    for out in &outs {
        out.assert_success();
    }
    let started: Vec<_> = outs.iter().filter(|o| o.stderr.contains("started local hive")).collect();
    assert_eq!(started.len(), 1, "one keeper starts the hive:\n{}", outs.iter().map(|o| o.dump()).collect::<String>());
    let pid = local.health()["pid"].as_u64().expect("the hive answers");
    started[0].assert_stderr_contains(&format!("(pid {pid},"));
    let listening = local.log().matches("listening on").count();
    assert_eq!(listening, 1, "one hive ran:\n{}", local.log());
}

#[test]
fn a_taken_port_is_reported_with_the_os_reason() {
    let hub = FakeHub::with_default_repo();
    let local = LocalHive::new(&hub);
    // Bound and never answering: the probe times out, the hive's bind fails.
    let _squatter = TcpListener::bind(&local.addr).unwrap();
    let out = local.keeper().args(["model", "list"]).run();
    out.assert_code(2)
        .assert_stderr_contains(&format!("cannot listen on {}", local.addr))
        .assert_stderr_contains("Address already in use");
}

#[test]
fn the_hive_log_tells_each_jobs_end() {
    let hub = FakeHub::with_default_repo();
    hub.set_rate(1 << 20);
    let hive = Hive::builder().hub(&hub).hf_token(TOKEN).spawn();
    Keeper::new().hive(&hive).args(["model", "download", REPO, "model.gguf"]).run().assert_success();
    Keeper::new().hive(&hive).args(["model", "download", REPO, "missing.gguf"]).run().assert_code(1);
    let id = hive.start_download("rbee-test/tiny-model", "model.gguf.nope");
    let _ = hive.delete(&format!("/v1/jobs/{id}"));
    let log = hive.log();
    let has = |needle: &str| assert!(log.contains(needle), "the hive log lacks {needle:?}:\n{log}");
    has(" INFO  rbee-hive: ");
    has("started: model_download rbee-test/tiny-model:model.gguf");
    has("completed in ");
    has("4.0 MiB received");
    has("failed after ");
    has("file `missing.gguf` was not found");
    assert!(log.contains(&format!("{id} cancelled after")) || log.contains(&format!("{id} failed")), "{log}");
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");

    // --log-level / RBEE_LOG: warnings only.
    let quiet = Hive::builder().hub(&hub).env("RBEE_LOG", "warn").spawn();
    Keeper::new().hive(&quiet).args(["model", "download", REPO, "missing.gguf"]).run().assert_code(1);
    let log = quiet.log();
    assert!(!log.contains("started") && log.contains("WARN  rbee-hive: ") && log.contains("failed after"), "{log}");
}

#[test]
fn the_terminal_shows_the_retry_state() {
    let hub = FakeHub::with_default_repo();
    hub.set_rate(2 << 20);
    hub.set_fault("model.gguf", Fault::ResetAfter(1 << 20), 1);
    let hive = Hive::builder().hub(&hub).arg("--retry-backoff-ms").arg("3000").spawn();
    let pty = Pty::spawn(&Keeper::new().hive(&hive).args(["model", "download", REPO, "model.gguf"]));
    pty.wait_for(3 * TIMEOUT, "🔁 retry 1/5 in 3 s");
    pty.wait().assert_code(0);
}

#[test]
fn a_closed_stdout_ends_the_keeper_and_leaves_the_job_running() {
    let hub = FakeHub::with_default_repo();
    hub.set_rate(256 * 1024);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    // `rbee --json model download … | head -2`
    let mut cmd = Keeper::new().hive(&hive).args(["--json", "model", "download", REPO, "model.gguf"]).command();
    let mut child = cmd.stdin(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let mut first = String::new();
    for _ in 0..2 {
        stdout.read_line(&mut first).unwrap();
    }
    drop(stdout);
    let closed = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if closed.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("the keeper still runs {TIMEOUT:?} after its stdout closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    assert!(closed.elapsed() < Duration::from_secs(5), "took {:?}; stderr:\n{err}", closed.elapsed());
    assert_eq!(status.code(), Some(141), "stderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let id: String = first.lines().next().and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok()).unwrap()
        ["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(err.contains(&format!("rbee job attach {id}")) && err.contains(&format!("rbee job cancel {id}")), "{err}");
    let (_, info) = hive.get(&format!("/v1/jobs/{id}"));
    assert_eq!(info["status"], "running", "the job goes on: {info}");
}

/// The README's transcript is `just demo`'s: the same commands, in the same order.
#[test]
fn the_readme_transcript_is_just_demos() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let justfile = std::fs::read_to_string(root.join("justfile")).unwrap();
    let start = readme.find("fake hub: HF_ENDPOINT").expect("the README shows the demo's output");
    let block = &readme[start..readme[start..].find("```").map_or(readme.len(), |end| start + end)];
    let shown: Vec<&str> = block.lines().filter_map(|l| l.strip_prefix("$ ")).collect();
    let recipe = &justfile[justfile.find("\ndemo:").expect("a demo recipe")..];
    let recipe = &recipe[..recipe[1..].find("\n# ").unwrap_or(recipe.len())];
    let said: Vec<String> =
        recipe.lines().filter_map(|l| l.trim().strip_prefix("say ")).map(|c| c.trim_matches('\'').to_owned()).collect();
    assert_eq!(shown, said, "README transcript vs `just demo`");
    assert!(block.contains("^C\n🛑 Cancelling operation...") && block.contains("↩️  resuming"), "{block}");
}
