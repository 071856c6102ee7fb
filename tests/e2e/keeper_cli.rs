//! The `rbee` command line off a terminal: help and version, exit codes, a hive that is not there,
//! plain progress lines (no escapes, at most one a second), NDJSON with `--json`, failures as one
//! line, and `job attach` replaying a job.

use std::time::Instant;

use serde_json::Value;

use crate::harness::fixtures::ndjson;
use crate::harness::pty::has_ansi;
use crate::harness::{free_port, FakeHub, Hive, Keeper, RepoSpec, TIMEOUT};

const REPO: &str = "rbee-test/tiny-model";
const MIB: u64 = 1024 * 1024;

/// Every command and what its `--help` must mention.
const HELP: &[(&str, &[&str])] = &[
    ("", &["model", "job", "hive", "--hive", "RBEE_HIVE_URL", "--json", "--quiet", "--version"]),
    ("model", &["download", "list", "rm"]),
    ("model download", &["[MODEL]", "[FILE]", "--revision", "--all", "Q4_K_M"]),
    ("model list", &["--json"]),
    ("model rm", &["[MODEL]", "[FILE]", "--partial", "--force"]),
    ("model get", &["[MODEL]", "[FILE]"]),
    ("job", &["list", "status", "cancel", "attach"]),
    ("job list", &["--json"]),
    ("job status", &["<ID>"]),
    ("job cancel", &["<ID>"]),
    ("job attach", &["<ID>"]),
    ("hive", &["start", "status", "stop"]),
    ("hive start", &["--addr", "--foreground"]),
    ("hive status", &["--hive"]),
    ("hive stop", &["--hive"]),
];

#[test]
fn every_command_has_help() {
    for (command, mentions) in HELP {
        let out = Keeper::new().args(command.split_whitespace()).arg("--help").run();
        out.assert_success();
        for needle in *mentions {
            out.assert_stdout_contains(needle);
        }
    }
}

#[test]
fn version() {
    let out = Keeper::new().arg("--version").run();
    out.assert_success().assert_stdout_contains(concat!("rbee ", env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[&[], &["frobnicate"], &["model"], &["job", "status"], &["--bogus", "job"]];
    for args in cases {
        let out = Keeper::new().args(*args).run();
        out.assert_code(2);
        assert!(out.stderr.contains("Usage"), "no usage shown\n{}", out.dump());
    }
    // Names the hive would refuse are refused before any request.
    let out = Keeper::new().args(["--hive", "http://127.0.0.1:9", "model", "download", "org/../x", "f"]).run();
    out.assert_code(2).assert_stderr_contains("invalid model `org/../x`");
}

#[test]
fn an_unreachable_hive_exits_2_and_says_what_to_do() {
    let url = format!("http://127.0.0.1:{}", free_port());
    for args in [&["job", "list"][..], &["model", "download", REPO, "model.gguf"], &["hive", "status"]] {
        let out = Keeper::new().args(["--hive", &url]).args(args).run();
        out.assert_code(2);
        out.assert_stderr_contains(&format!("cannot reach the hive at {url}"));
        out.assert_stderr_contains("rbee: hint: start one with `rbee hive start`");
        assert_eq!(out.stderr.matches("rbee: error:").count(), 1, "one error line\n{}", out.dump());
    }
}

/// A 4 MiB file at ~1.4 MiB/s (about 3 s), with a heartbeat every second.
fn slow_pair() -> (FakeHub, Hive) {
    let hub = FakeHub::with_default_repo();
    hub.set_rate(1400 * 1024);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    (hub, hive)
}

#[test]
fn piped_download_prints_plain_throttled_lines() {
    let (_hub, hive) = slow_pair();
    let started = Instant::now();
    let out = Keeper::new().hive(&hive).args(["model", "download", REPO, "model.gguf"]).run();
    // Whole seconds, rounded up: a 2.9 s download may print a line per started second.
    let elapsed = started.elapsed().as_millis().div_ceil(1000);
    out.assert_success();
    assert!(!has_ansi(&out.stdout) && !has_ansi(&out.stderr), "escape codes off a terminal\n{}", out.dump());
    let progress = out.stderr.lines().filter(|l| l.starts_with("⏳ model.gguf ") && l.contains("/s")).count();
    assert!(progress >= 2, "too few progress lines\n{}", out.dump());
    let most = usize::try_from(elapsed).unwrap() + 2;
    assert!(progress <= most, "{progress} progress lines in {elapsed} s: not throttled\n{}", out.dump());
    out.assert_stderr_contains("⏳ Still downloading model.gguf from HuggingFace... (");
    for hidden in ["⏳ ⏳", "[DONE]", "[ERROR]"] {
        out.assert_nowhere(hidden);
    }
    // The final line names the local path.
    let last = out.stdout.lines().last().unwrap_or_default();
    let path = last.strip_prefix("✅ ").unwrap_or_else(|| panic!("last line {last:?}\n{}", out.dump()));
    assert!(path.starts_with(hive.cache_dir().to_str().unwrap()) && path.ends_with("model.gguf"), "{path}");
    assert_eq!(std::fs::metadata(path).unwrap().len(), 4 * MIB);
}

#[test]
fn quiet_prints_only_the_path() {
    let hub = FakeHub::with_default_repo();
    let hive = Hive::spawn(&hub);
    let out = Keeper::new().hive(&hive).args(["--quiet", "model", "download", REPO, "config.json"]).run();
    out.assert_success();
    assert_eq!(out.stderr, "", "quiet run wrote to stderr\n{}", out.dump());
    assert!(out.stdout.trim().ends_with("config.json") && out.stdout.lines().count() == 1, "{}", out.dump());
}

#[test]
fn quiet_ctrl_c_cancels_on_the_hive_and_prints_nothing() {
    let (hub, hive) = slow_pair();
    let keeper = Keeper::new().hive(&hive).args(["--quiet", "model", "download", REPO, "model.gguf"]).spawn();
    assert!(hub.wait_for_bytes(64 << 10, TIMEOUT), "the download is under way\n{}", keeper.dump());
    keeper.send_sigint();
    let out = keeper.wait();
    out.assert_code(130);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""), "--quiet printed\n{}", out.dump());
    let (_, jobs) = hive.get("/v1/jobs");
    assert_eq!(jobs[0]["status"], "cancelled", "the job was cancelled on the hive: {jobs}");
}

#[test]
fn json_prints_every_event_as_one_line() {
    let (_hub, hive) = slow_pair();
    let out = Keeper::new().hive(&hive).args(["--json", "model", "download", REPO, "model.gguf"]).run();
    out.assert_success();
    let events = ndjson(&out.stdout, &out.dump());
    assert_eq!(events[0]["id"], 1, "starts at the first event\n{}", out.dump());
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "done", "{}", out.dump());
    assert!(last["path"].as_str().unwrap().ends_with("model.gguf"));
    assert!(events.iter().any(|e| e["kind"] == "progress") && events.iter().any(|e| e["kind"] == "heartbeat"));
    assert!(events.iter().all(|e| e["message"] != "[DONE]"), "end markers are not events\n{}", out.dump());
    assert_eq!(events.iter().filter(|e| e["kind"] == "done").count(), 1);
}

#[test]
fn a_failed_job_is_one_error_line_and_exit_1() {
    let hub = FakeHub::with_default_repo();
    let hive = Hive::spawn(&hub);
    let out = Keeper::new().hive(&hive).args(["model", "download", REPO, "nope.gguf"]).run();
    out.assert_code(1);
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line\n{}", out.dump());
    let line = errors[0];
    assert!(line.starts_with("rbee: error: download of rbee-test/tiny-model:nope.gguf failed: "), "{line}");
    assert!(line.contains("`nope.gguf`") && line.contains("check the file name"), "{line}");
    for noise in ["❌", "[ERROR]", "error: rbee"] {
        out.assert_nowhere(noise);
    }
}

#[test]
fn attach_replays_a_running_job_to_its_end() {
    let hub = FakeHub::with_default_repo();
    hub.add_repo(RepoSpec::new("rbee-test/attach").lfs("a.gguf", 3 * MIB));
    hub.set_rate(2 * MIB);
    let hive = Hive::spawn(&hub);
    let job = hive.start_download("rbee-test/attach", "a.gguf");
    assert!(hub.wait_for_bytes(1, TIMEOUT), "the download never started");
    let out = Keeper::new().hive(&hive).args(["--json", "job", "attach", &job]).run();
    out.assert_success();
    let events = ndjson(&out.stdout, &out.dump());
    assert_eq!((events[0]["id"].as_u64(), events[0]["job_id"].as_str()), (Some(1), Some(job.as_str())));
    assert_eq!(events.last().unwrap()["kind"], "done");
    // Attaching to a finished job replays it too; an unknown job is an error.
    Keeper::new().hive(&hive).args(["job", "attach", &job]).run().assert_success().assert_stdout_contains("a.gguf");
    let out = Keeper::new().hive(&hive).args(["job", "attach", "job-0000"]).run();
    out.assert_code(1).assert_stderr_contains("no job job-0000");
}

#[test]
fn job_commands_show_and_cancel_jobs() {
    let hub = FakeHub::with_default_repo();
    hub.set_rate(256 * 1024);
    let hive = Hive::spawn(&hub);
    let job = hive.start_download(REPO, "model.gguf");
    let list = Keeper::new().hive(&hive).args(["job", "list"]).run();
    list.assert_success().assert_stdout_contains(&job);
    Keeper::new().hive(&hive).args(["job", "status", &job]).run().assert_success().assert_stdout_contains("running");
    let out = Keeper::new().hive(&hive).args(["job", "cancel", &job]).run();
    out.assert_success().assert_stdout_contains(&format!("cancelled {job}"));
    let again = Keeper::new().hive(&hive).args(["job", "cancel", &job]).run();
    again.assert_success().assert_stdout_contains("already ended: cancelled");
    let status = Keeper::new().hive(&hive).args(["--json", "job", "status", &job]).run();
    let info: Value = serde_json::from_str(status.assert_success().stdout.trim()).expect("status JSON");
    assert_eq!(info["status"], "cancelled", "{}", status.dump());
}
