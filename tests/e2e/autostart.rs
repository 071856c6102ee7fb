//! The embedded default: with no `--hive`, the keeper starts a local `rbee-hive` on the local
//! address (`RBEE_HIVE_ADDR` here, so tests never touch 7835), passes it its own HF environment,
//! and detaches it from the terminal so a Ctrl+C reaches only the keeper. `rbee hive status` and
//! `rbee hive stop` manage it.

use std::path::Path;

use crate::harness::pty::Pty;
use crate::harness::{FakeHub, LocalHive, RepoSpec, TIMEOUT};

const MIB: u64 = 1024 * 1024;

fn snapshot_file(cache: &Path, repo: &str, file: &str) -> bool {
    let snapshots = cache.join(format!("models--{}", repo.replace('/', "--"))).join("snapshots");
    std::fs::read_dir(snapshots).is_ok_and(|mut dirs| dirs.any(|d| d.is_ok_and(|d| d.path().join(file).is_file())))
}

#[test]
fn the_keeper_starts_a_local_hive_that_outlives_ctrl_c() {
    let hub = FakeHub::with_default_repo();
    hub.add_repo(RepoSpec::new("rbee-test/slow").lfs("slow.gguf", 8 * MIB));
    hub.set_rate(512 * 1024);
    let local = LocalHive::new(&hub);
    assert!(!local.listening(), "{} is taken", local.addr);

    // No hive: the keeper starts one (one line), then downloads through it; Ctrl+C on the terminal.
    let mut pty = Pty::spawn(&local.keeper().args(["model", "download", "rbee-test/slow", "slow.gguf"]));
    pty.wait_for(TIMEOUT, &format!("🐝 started local hive at {}", local.url()));
    pty.wait_for(TIMEOUT, "slow.gguf [");
    let pid = local.pid().expect("the started hive answers");
    // Detached in its own session (it leads it), with no controlling terminal: /proc/<pid>/stat
    // fields 6 and 7 (after the `(comm)` field) are the session id and tty.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("hive stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
    assert_eq!(fields[3], pid.to_string(), "the hive does not lead its own session: {stat}");
    assert_eq!(fields[4], "0", "the hive has a controlling terminal: {stat}");
    pty.ctrl_c();
    let out = pty.wait();
    out.assert_code(130).assert_contains("🛑 Operation cancelled by user");
    assert_eq!(out.text().matches("started local hive").count(), 1, "{}", out.dump());
    assert_eq!(local.pid(), Some(pid), "the hive did not survive the Ctrl+C\n{}\n{}", out.dump(), local.log());

    // The next command finds it running, and it downloads with the keeper's HF environment.
    hub.set_rate(0);
    let out = local.keeper().args(["model", "download", "rbee-test/tiny-model", "model.gguf"]).run();
    out.assert_success();
    assert!(!out.stderr.contains("started local hive"), "started twice\n{}", out.dump());
    assert!(snapshot_file(local.cache.path(), "rbee-test/tiny-model", "model.gguf"), "{}", out.dump());

    let out = local.keeper().args(["hive", "status"]).run();
    out.assert_success().assert_stdout_contains(&format!("hive at {}: ok", local.url()));
    out.assert_stdout_contains(&format!("pid {pid}"));

    let out = local.keeper().args(["hive", "stop"]).run();
    out.assert_success().assert_stdout_contains("stopped");
    assert!(local.wait_closed(), "the hive still listens after `rbee hive stop`\n{}", local.log());
    local.keeper().args(["hive", "status"]).run().assert_code(2).assert_stderr_contains("cannot reach the hive");
    local.keeper().args(["hive", "stop"]).run().assert_success().assert_stderr_contains("no hive running");
}

#[test]
fn hive_start_runs_a_hive_in_the_background() {
    let hub = FakeHub::with_default_repo();
    let local = LocalHive::new(&hub);
    let other = LocalHive::new(&hub);
    let addr = other.addr.clone();
    let out = local.keeper().args(["hive", "start", "--addr", &addr]).run();
    out.assert_success().assert_stdout_contains(&format!("🐝 started local hive at http://{addr} (pid "));
    assert!(other.pid().is_some(), "nothing answers at {addr}\n{}", out.dump());
    assert!(!local.listening(), "--addr was ignored");
    let again = local.keeper().args(["hive", "start", "--addr", &addr]).run();
    again.assert_success().assert_stderr_contains("already running");
    let out = local.keeper().args(["--hive", &other.url(), "--json", "hive", "status"]).run();
    let health: serde_json::Value = serde_json::from_str(out.assert_success().stdout.trim()).unwrap();
    assert_eq!((health["status"].as_str(), health["pid"].as_u64()), (Some("ok"), other.pid()));
    local.keeper().args(["--hive", &other.url(), "hive", "stop"]).run().assert_success();
    assert!(other.wait_closed(), "still listening after stop");
}
