//! Hives on other machines over OpenSSH, against a real `sshd` in a network namespace of its own
//! (`harness::remote`): install, start, a download landing in the remote user's cache, list,
//! status, Ctrl+C closing the remote upstream connection, restart, stop, and the errors (a wrong
//! alias, refused auth, an unknown alias, no binary, another architecture). The fake hub listens
//! on this side of the veth; the remote hive's port is reachable only through ssh.
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::fixtures::{etag, keeper_job_id, sha256_of, MODEL, REPO};
use crate::harness::remote::{SshHost, ALIAS, BADKEY, GONE};
use crate::harness::{FakeHub, HubConfig, Keeper, Output, RepoSpec, TIMEOUT};

const TOKEN: &str = "hf_sshSecretToken0123456789";

/// A hub the remote hive reaches, on this side of `host`'s veth.
fn hub_for(host: &SshHost, size: u64) -> FakeHub {
    let hub = FakeHub::start(HubConfig { bind: Some(host.host_ip().into()), ..HubConfig::default() });
    hub.add_repo(RepoSpec::demo(REPO, size));
    hub
}

/// `rbee …` against `host`, with the hub's endpoint and a token in its environment.
fn rbee(host: &SshHost, hub: &FakeHub, args: &[&str]) -> Keeper {
    host.keeper().env("HF_ENDPOINT", hub.endpoint()).env("HF_TOKEN", TOKEN).args(args)
}

#[track_caller]
fn ok(out: &Output, host: &SshHost) -> String {
    assert_eq!(out.code, Some(0), "{}\n--- remote hive log ---\n{}", out.dump(), host.hive_log());
    out.stdout.clone()
}

fn installed(host: &SshHost) -> PathBuf {
    host.home().join(".local/bin/rbee-hive")
}

#[track_caller]
fn install_and_start(host: &SshHost, hub: &FakeHub) {
    ok(&rbee(host, hub, &["hive", "install", "--host", ALIAS]).run(), host);
    ok(&rbee(host, hub, &["hive", "start", "--host", ALIAS]).run(), host);
}

#[test]
fn ssh_hive_lifecycle_and_a_download_into_the_remote_cache() {
    let Some(host) = SshHost::start("the SSH hive lifecycle test") else { return };
    let hub = hub_for(&host, 4 << 20);

    // Nothing installed yet: start says how to install.
    let out = rbee(&host, &hub, &["hive", "start", "--host", ALIAS]).run();
    out.assert_code(2).assert_stderr_contains("rbee hive install --host gpu");
    let out = rbee(&host, &hub, &["model", "list", "--hive", ALIAS]).run();
    out.assert_code(2).assert_stderr_contains("rbee hive install --host gpu");

    let stdout = ok(&rbee(&host, &hub, &["hive", "install", "-a", ALIAS]).run(), &host);
    assert!(stdout.contains("installed rbee-hive"), "{stdout}");
    let first = std::fs::metadata(installed(&host)).expect("~/.local/bin/rbee-hive on the remote");
    assert_eq!(std::fs::read(installed(&host)).unwrap(), std::fs::read(crate::harness::bin("rbee-hive")).unwrap());
    let out = rbee(&host, &hub, &["hive", "install", "--host", ALIAS]).run();
    ok(&out, &host);
    out.assert_stderr_contains("already installed");
    let again = std::fs::metadata(installed(&host)).unwrap();
    assert_eq!((again.ino(), again.mtime_nsec()), (first.ino(), first.mtime_nsec()), "same version: no copy");
    let out = rbee(&host, &hub, &["hive", "install", "--host", ALIAS, "--force"]).run();
    assert!(ok(&out, &host).contains("installed rbee-hive"));
    assert_ne!(std::fs::metadata(installed(&host)).unwrap().ino(), first.ino(), "--force copies (a new file)");

    let stdout = ok(&rbee(&host, &hub, &["hive", "start", "--host", ALIAS]).run(), &host);
    assert!(stdout.contains("started hive on gpu"), "{stdout}");
    let masters = host.masters();
    assert_eq!(masters.len(), 1, "one ssh master for the alias: {masters:?}");
    let pids = host.hive_pids();
    assert_eq!(pids.len(), 1, "one rbee-hive of {}: {pids:?}", host.user());
    let leaked: Vec<_> = SshHost::all_cmdlines().into_iter().filter(|c| c.contains(TOKEN)).collect();
    assert!(leaked.is_empty(), "HF_TOKEN on a command line: {leaked:?}");
    assert_only_loopback(&host);

    let out = rbee(&host, &hub, &["hive", "status", "--host", ALIAS]).run();
    let status = ok(&out, &host);
    let version = format!("rbee-hive {}", env!("CARGO_PKG_VERSION"));
    for part in ["hive on gpu", &version, &format!("pid {}", pids[0]), "0 running jobs"] {
        assert!(status.contains(part), "status lacks {part:?}: {status}");
    }

    let out = rbee(&host, &hub, &["model", "download", "--hive", ALIAS, REPO, MODEL]).run();
    ok(&out, &host);
    let blob = host.hf_cache().join("models--rbee-test--tiny-model/blobs").join(etag(&hub, MODEL));
    assert_eq!(sha256_of(&blob), hub.sha256(REPO, MODEL), "the blob in the remote user's cache");
    assert_eq!(std::fs::metadata(&blob).unwrap().uid(), uid_of(&host), "written by the remote user");
    let snapshot = host.hf_cache().join("models--rbee-test--tiny-model/snapshots").join(hub.commit(REPO)).join(MODEL);
    assert!(snapshot.exists(), "published at {}", snapshot.display());
    let listed = ok(&rbee(&host, &hub, &["model", "list", "--hive", ALIAS]).run(), &host);
    assert!(listed.contains(REPO), "{listed}");
    assert_eq!(host.masters(), masters, "every command reused the same master");
    let bearer = format!("Bearer {TOKEN}");
    let hub_saw_token = hub.stats().requests.iter().any(|r| r.header("authorization") == Some(bearer.as_str()));
    assert!(hub_saw_token, "the remote hive got HF_TOKEN through stdin");

    let stdout = ok(&rbee(&host, &hub, &["hive", "restart", "--host", ALIAS]).run(), &host);
    assert!(stdout.contains("stopped") && stdout.contains("started"), "{stdout}");
    let restarted = host.hive_pids();
    assert!(restarted.len() == 1 && restarted != pids, "a new hive: {pids:?} → {restarted:?}");

    ok(&rbee(&host, &hub, &["hive", "stop", "--host", ALIAS]).run(), &host);
    assert_eq!(host.hive_pids(), Vec::<u32>::new(), "no rbee-hive of {} left", host.user());
    let out = rbee(&host, &hub, &["hive", "status", "--host", ALIAS]).run();
    out.assert_code(2).assert_stderr_contains("rbee hive start --host gpu");

    ok(&rbee(&host, &hub, &["hive", "uninstall", "--host", ALIAS]).run(), &host);
    assert!(!installed(&host).exists(), "uninstall removes the binary");
    assert!(blob.exists(), "uninstall keeps the cache");
}

/// Every listening socket in the namespace is sshd's or on its loopback.
#[track_caller]
fn assert_only_loopback(host: &SshHost) {
    let listening = host.listening();
    let local: Vec<&str> = listening.lines().filter_map(|l| l.split_whitespace().nth(3)).collect();
    assert!(local.contains(&"127.0.0.1:7835"), "the hive listens on the remote's loopback: {listening}");
    let sshd = format!("{}:22", host.remote_ip());
    let open: Vec<_> = local.iter().filter(|a| !a.starts_with("127.0.0.1:") && **a != sshd).collect();
    assert!(open.is_empty(), "ports open beyond loopback: {open:?}\n{listening}");
}

fn uid_of(host: &SshHost) -> u32 {
    std::fs::metadata(host.home()).expect("remote home").uid()
}

#[test]
fn ssh_ctrl_c_closes_the_remote_upstream_connection() {
    let Some(host) = SshHost::start("the SSH Ctrl+C test") else { return };
    let size = 64 << 20;
    let hub = hub_for(&host, size);
    hub.set_rate(1 << 20);
    install_and_start(&host, &hub);

    let keeper = rbee(&host, &hub, &["model", "download", "--hive", ALIAS, REPO, MODEL]).spawn();
    keeper_job_id(&keeper);
    let conn = hub.wait_until(TIMEOUT, |s| s.connections.iter().any(|c| c.bytes_sent >= 256 << 10));
    assert!(conn, "the remote hive never fetched from the hub\n{}\n{}", keeper.dump(), host.hive_log());
    let open: Vec<u64> = hub.connections().iter().filter(|c| c.closed_at.is_none()).map(|c| c.id).collect();
    assert!(!open.is_empty(), "no open CDN connection");

    let sigint = Instant::now();
    keeper.send_sigint();
    let out = keeper.wait_timeout(Duration::from_secs(10));
    out.assert_code(130);
    let exited = sigint.elapsed();
    assert!(exited <= Duration::from_secs(2), "the DELETE through the tunnel took {exited:?}");
    for id in open {
        let closed = hub.wait_closed(id, TIMEOUT).expect("the remote upstream connection was never closed");
        let lag = closed.saturating_duration_since(sigint);
        assert!(lag <= Duration::from_secs(1), "remote upstream connection {id} closed {lag:?} after SIGINT");
    }
    let status = ok(&rbee(&host, &hub, &["hive", "status", "--host", ALIAS]).run(), &host);
    assert!(status.contains("0 running jobs") && status.contains("0 live tasks"), "task dropped: {status}");
    ok(&rbee(&host, &hub, &["hive", "stop", "--host", ALIAS]).run(), &host);
    assert_eq!(host.hive_pids(), Vec::<u32>::new());
}

#[test]
fn ssh_errors_say_what_to_do() {
    let Some(host) = SshHost::start("the SSH error test") else { return };
    let hub = hub_for(&host, 1 << 20);
    let timed = |keeper: Keeper| {
        let t0 = Instant::now();
        let out = keeper.run();
        (out, t0.elapsed())
    };

    // An alias ssh cannot reach (nothing listens on its port): ssh's words and a config snippet.
    let (out, took) = timed(rbee(&host, &hub, &["model", "list", "--hive", GONE]));
    out.assert_code(2).assert_stderr_contains("cannot reach `gone`").assert_stderr_contains("Host gone");
    out.assert_stderr_contains("Connection refused");
    assert!(took <= Duration::from_secs(10), "took {took:?}");

    // Auth refused: names user@host and the keys.
    let (out, took) = timed(rbee(&host, &hub, &["hive", "status", "--host", BADKEY]));
    out.assert_code(2).assert_stderr_contains(&format!("refused {}@{}", host.user(), host.remote_ip()));
    out.assert_stderr_contains("authorized_keys");
    assert!(took <= Duration::from_secs(10), "took {took:?}");

    // An alias no config knows, from inside the namespace (so the name lookup has nowhere to go):
    // fails in time, naming the alias.
    let keeper = host.keeper().args(["model", "list", "--hive", "no-such-box"]);
    let t0 = Instant::now();
    let out = host.in_netns(&keeper.command()).output().expect("ip netns exec rbee");
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-box") && stderr.contains("ssh"), "{stderr}");
    assert!(took <= Duration::from_secs(20), "took {took:?}");

    // Another architecture: install refuses it.
    host.fake_uname(Some("Linux riscv64"));
    let out = rbee(&host, &hub, &["hive", "install", "--host", ALIAS]).run();
    out.assert_code(2).assert_stderr_contains("`gpu` runs Linux riscv64");
    assert!(!installed(&host).exists(), "nothing copied");
    host.fake_uname(None);

    // Installed, not started: model commands say how to start it.
    ok(&rbee(&host, &hub, &["hive", "install", "--host", ALIAS]).run(), &host);
    let (out, took) = timed(rbee(&host, &hub, &["model", "list", "--hive", ALIAS]));
    out.assert_code(2).assert_stderr_contains("rbee hive start --host gpu");
    assert!(took <= Duration::from_secs(10), "took {took:?}");
    let out = rbee(&host, &hub, &["hive", "stop", "--host", ALIAS]).run();
    ok(&out, &host);
    out.assert_stderr_contains("no hive running on gpu");
}
