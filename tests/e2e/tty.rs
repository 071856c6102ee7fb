//! The keeper on a real terminal (a pty): progress bars, and Ctrl+C typed at the keyboard — the
//! terminal sends SIGINT to the whole foreground process group. One press cancels the hive's job
//! exactly once and exits 130; a second press leaves at once; a hive that is gone at cancel time
//! gets an honest "may still be running" with the command to cancel it.

use std::time::Duration;

use serde_json::Value;

use crate::harness::proxy::Proxy;
use crate::harness::pty::Pty;
use crate::harness::{FakeHub, Hive, Keeper, RepoSpec, TIMEOUT};

const REPO: &str = "rbee-test/tiny-model";

/// The status of the hive's only job.
#[track_caller]
fn only_job(hive: &Hive) -> Value {
    let (status, jobs) = hive.get("/v1/jobs");
    assert_eq!(status, 200, "{jobs}");
    let jobs = jobs.as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "one job expected: {jobs:?}");
    jobs[0].clone()
}

/// A hub serving the default repo at `rate` bytes/s, and a hive with 1 s heartbeats.
fn pair(rate: u64) -> (FakeHub, Hive) {
    let hub = FakeHub::with_default_repo();
    hub.set_rate(rate);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    (hub, hive)
}

/// Start a download on a pty and wait until its bar is drawn and bytes flow.
fn downloading(hub: &FakeHub, keeper: &Keeper) -> Pty {
    let pty = Pty::spawn(keeper);
    pty.wait_for(TIMEOUT, "model.gguf [");
    assert!(hub.wait_for_bytes(64 * 1024, TIMEOUT), "no bytes flowed\n{}", pty.dump(None));
    pty
}

#[test]
fn a_terminal_gets_a_progress_bar() {
    let (_hub, hive) = pair(1400 * 1024);
    let pty = Pty::spawn(&Keeper::new().hive(&hive).args(["model", "download", REPO, "model.gguf"]));
    let out = pty.wait();
    out.assert_code(0);
    let (raw, text) = (&out.raw, out.text());
    assert!(raw.contains("\x1b[") && raw.contains('\r'), "no cursor control: not a bar\n{}", out.dump());
    for part in ["model.gguf [", "%", "MiB/4.00 MiB", "ETA ", "MiB/s", "⏳ 1s"] {
        assert!(text.contains(part), "the bar lacks {part:?}\n{}", out.dump());
    }
    // Heartbeats update the bar instead of printing lines; end markers stay hidden.
    for hidden in ["Still downloading", "[DONE]", "⏳ ⏳"] {
        assert!(!text.contains(hidden), "{hidden:?} shown on the terminal\n{}", out.dump());
    }
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(last.starts_with("✅ ") && last.trim_end().ends_with("model.gguf"), "last line {last:?}\n{}", out.dump());
}

#[test]
fn a_resumed_download_says_where_it_resumed() {
    let (hub, hive) = pair(1024 * 1024);
    let keeper = Keeper::new().hive(&hive).args(["model", "download", REPO, "model.gguf"]);
    let mut pty = downloading(&hub, &keeper);
    // The hive writes to disk in batches; what it had not written is fetched again, so the offset
    // is whatever was on disk: the bar must show the offset the hive narrated.
    assert!(hub.wait_for_bytes(3 * 1024 * 1024 / 2, TIMEOUT), "no bytes flowed\n{}", pty.dump(None));
    pty.ctrl_c();
    pty.wait().assert_code(130);
    hub.set_rate(4 * 1024 * 1024);
    let out = Pty::spawn(&keeper).wait();
    out.assert_code(0);
    let text = out.text();
    let offset: u64 = text
        .split("from byte ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume narration\n{}", out.dump()));
    assert!(offset > 0, "resumed from byte 0\n{}", out.dump());
    #[allow(clippy::cast_precision_loss)]
    let shown = format!("resumed from {:.1} MiB", offset as f64 / f64::from(1 << 20));
    out.assert_contains(&shown);
}

/// [`downloading`] from a 256 KiB/s [`pair`], with the keeper talking to the hive through a
/// [`Proxy`] that counts its DELETEs.
fn proxied_download() -> (FakeHub, Hive, Proxy, Pty) {
    let (hub, hive) = pair(256 * 1024);
    let proxy = Proxy::start(hive.url());
    let keeper = Keeper::new().args(["--hive", &proxy.url(), "model", "download", REPO, "model.gguf"]);
    let pty = downloading(&hub, &keeper);
    (hub, hive, proxy, pty)
}

#[test]
fn ctrl_c_cancels_the_job_exactly_once() {
    let (hub, hive, proxy, mut pty) = proxied_download();
    pty.ctrl_c();
    let out = pty.wait();
    out.assert_code(130)
        .assert_contains("🛑 Cancelling operation...")
        .assert_contains("🛑 Operation cancelled by user");
    let job = only_job(&hive);
    assert_eq!(job["status"], "cancelled", "{job}\n{}", out.dump());
    assert_eq!(proxy.deletes(), 1, "one DELETE expected\n{}", out.dump());
    assert_eq!(hive.log().matches("cancelled").count(), 1, "one cancel in the hive log\n{}", out.dump());
    assert!(hub.wait_all_closed(TIMEOUT), "the CDN connection stayed open: {:?}", hub.connections());
    let (status, _) = hive.delete(&format!("/v1/jobs/{}", job["job_id"].as_str().unwrap()));
    assert_eq!(status, 409, "the job had already ended");
}

#[test]
fn a_second_ctrl_c_leaves_at_once() {
    let (_hub, hive, proxy, mut pty) = proxied_download();
    proxy.freeze(true); // the hive stops answering: the DELETE hangs
    pty.ctrl_c();
    pty.wait_for(TIMEOUT, "Cancelling operation");
    pty.ctrl_c();
    let out = pty.wait_timeout(TIMEOUT);
    out.assert_code(130).assert_contains("second Ctrl+C").assert_contains("may still be running");
    let job_id = only_job(&hive)["job_id"].as_str().unwrap().to_owned();
    out.assert_contains(&format!("cancel it with `rbee job cancel {job_id} --hive {}`", proxy.url()));
    proxy.freeze(false);
}

#[test]
fn ctrl_c_with_the_hive_gone_says_how_to_cancel_later() {
    let (hub, mut hive) = pair(256 * 1024);
    let keeper = Keeper::new().hive(&hive).args(["model", "download", REPO, "model.gguf"]);
    let mut pty = downloading(&hub, &keeper);
    let job_id = only_job(&hive)["job_id"].as_str().unwrap().to_owned();
    hive.kill();
    pty.ctrl_c();
    let out = pty.wait();
    out.assert_code(130).assert_contains(&format!("could not cancel job {job_id}"));
    let how = format!("`rbee job cancel {job_id} --hive {}`", hive.url());
    out.assert_contains("may still be running").assert_contains(&how);
}

#[test]
fn attach_cancel_then_ctrl_c_cancels_the_job() {
    let hub = FakeHub::with_default_repo();
    hub.add_repo(RepoSpec::new("rbee-test/attach").lfs("a.gguf", 4 * 1024 * 1024));
    hub.set_rate(256 * 1024);
    let hive = Hive::spawn(&hub);
    let job = hive.start_download("rbee-test/attach", "a.gguf");
    let mut pty = Pty::spawn(&Keeper::new().hive(&hive).args(["job", "attach", &job, "--cancel"]));
    pty.wait_for(TIMEOUT, "a.gguf [");
    pty.ctrl_c();
    let out = pty.wait();
    out.assert_code(130).assert_contains("🛑 Operation cancelled by user");
    assert_eq!(only_job(&hive)["status"], "cancelled", "{}", out.dump());
    assert!(hub.wait_all_closed(Duration::from_secs(10)), "the CDN connection stayed open");
}
