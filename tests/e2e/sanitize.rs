//! The keeper prints what others wrote through one sanitizer (`rbee_protocol::text::sanitize`):
//! a hostile hive's health text, narration, model names, error messages and job table, and a
//! hostile hub's file names in the progress bar, reach the terminal with SGR stripped and every
//! other escape, control, bidi and zero-width character shown as `\u{…}` (`\uXXXX` in `--json`).

use crate::harness::pty::Pty;
use crate::harness::{FakeHub, Hive, HubConfig, Keeper, Output, RepoSpec};
use crate::rbee_standin::StandIn;

/// Characters that must never reach a terminal raw (ESC and BEL are in the C0 range).
fn raw_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[track_caller]
fn assert_no_raw(out: &Output) {
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let bad: Vec<_> = text.chars().filter(|&c| raw_unsafe(c)).collect();
        assert!(bad.is_empty(), "raw {bad:?} on {name}\n{}", out.dump());
        assert!(!text.contains("\\u{1b}[31m") && !text.contains("\\u{1b}[0m"), "SGR not stripped on {name}");
    }
}

/// The attacker's text as the keeper shows it in text (SGR gone, the rest escaped).
const SHOWN: &str =
    "RED\\u{1b}]0;TITLE\\u{7}\\u{1b}]52;c;ZXZpbA==\\u{7}\\u{1b}[2J\\u{9b}1m\\u{202e}\\u{2028}\\u{200b}\\u{feff}";
/// The attacker's text inside a `--json` string.
const SHOWN_JSON: &str =
    r"RED\u001b[0m\u001b]0;TITLE\u0007\u001b]52;c;ZXZpbA==\u0007\u001b[2J\u009b1m\u202e\u2028\u200b\ufeff";

fn keeper(stand_in: &StandIn) -> Keeper {
    Keeper::new().args(["--hive", stand_in.url.as_str()])
}

#[test]
fn a_hostile_hives_texts_are_shown_escaped() {
    let hive = StandIn::hostile();
    let out = keeper(&hive).args(["model", "download", "org/m:x.gguf"]).run();
    out.assert_success()
        .assert_stderr_contains(&format!("📥 Downloading model 'org/m:x.gguf' on hive 'localhost'{SHOWN}"));
    assert_no_raw(&out);
    let out = keeper(&hive).args(["model", "list"]).run();
    out.assert_success().assert_stdout_contains(&format!("org/m:x.gguf{SHOWN}"));
    assert_no_raw(&out);
    let out = keeper(&hive).args(["--json", "model", "list"]).run();
    out.assert_success().assert_stdout_contains(&format!("org/m:x.gguf\\u001b[31m{SHOWN_JSON}"));
    assert_no_raw(&out);
    let out = keeper(&hive).args(["--json", "model", "download", "org/m:y.gguf"]).run();
    out.assert_success();
    let events: Vec<serde_json::Value> = out.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let said = events.iter().filter_map(|e| e["message"].as_str()).find(|m| m.contains("Downloading model"));
    assert_eq!(
        said,
        Some(&*format!("📥 Downloading model 'org/m:y.gguf' on hive 'localhost'{SHOWN}")),
        "{}",
        out.dump()
    );
    assert_no_raw(&out);
    let out = keeper(&hive).args(["model", "download", "org/m:fail.gguf"]).run();
    out.assert_code(1).assert_stderr_contains(&format!("no such file in the repo{SHOWN}"));
    assert_no_raw(&out);
}

#[test]
fn a_hostile_hives_health_and_jobs_are_shown_escaped() {
    let hive = StandIn::hostile();
    let out = keeper(&hive).args(["hive", "status"]).run();
    out.assert_success().assert_stdout_contains(&format!(": ok{SHOWN} (version 6.6.6{SHOWN}, pid 1"));
    assert_no_raw(&out);
    let out = keeper(&hive).args(["job", "list"]).run();
    out.assert_success().assert_stdout_contains(&format!("download op{SHOWN}"));
    out.assert_stdout_contains(&format!("job-1{SHOWN}"));
    assert_no_raw(&out);
    let out = keeper(&hive).args(["job", "status", "job-1"]).run();
    out.assert_success().assert_stdout_contains(&format!("error: the CDN said: {SHOWN}"));
    assert_no_raw(&out);
    let out = keeper(&hive).args(["--json", "job", "list"]).run();
    out.assert_success().assert_stdout_contains(&format!("download op\\u001b[31m{SHOWN_JSON}"));
    assert_no_raw(&out);
    let out = keeper(&hive).args(["--json", "hive", "status"]).run();
    out.assert_success().assert_stdout_contains(&format!("\"status\":\"ok\\u001b[31m{SHOWN_JSON}\""));
    assert_no_raw(&out);
}

#[test]
fn a_hostile_file_name_is_escaped_in_the_progress_bar() {
    let hub = FakeHub::start(HubConfig::default());
    let repo = "rbee-test/bidi";
    let name = "gpt\u{202e}fdp.exe\u{200b}\u{2028}.gguf";
    hub.add_repo(RepoSpec::new(repo).lfs(name, 2 << 20));
    hub.set_rate(1 << 20);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let pty = Pty::spawn(&Keeper::new().hive(&hive).args(["model", "download", repo, name]));
    let out = pty.wait();
    out.assert_code(0);
    let text = out.text();
    assert!(text.contains("gpt\\u{202e}fdp.exe\\u{200b}\\u{2028}.gguf ["), "the bar's label, escaped\n{}", out.dump());
    let raw = ['\u{202e}', '\u{200b}', '\u{2028}'].iter().any(|c| out.raw.contains(*c));
    assert!(!raw, "raw bidi or zero-width on the terminal\n{}", out.dump());
    let plain = Keeper::new().hive(&hive).args(["model", "download", repo, name]).run();
    plain.assert_success();
    assert_no_raw(&plain);
    let listed = Keeper::new().hive(&hive).args(["model", "list"]).run();
    listed.assert_success().assert_stdout_contains("gpt\\u{202e}fdp.exe\\u{200b}\\u{2028}.gguf");
    assert_no_raw(&listed);
    let jobs = Keeper::new().hive(&hive).args(["job", "list"]).run();
    jobs.assert_success().assert_stdout_contains("gpt\\u{202e}fdp.exe\\u{200b}\\u{2028}.gguf");
    assert_no_raw(&jobs);
}
