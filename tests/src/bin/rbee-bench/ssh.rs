//! Cancel latency through an SSH tunnel: the hive runs on another "machine" (a network namespace
//! with its own sshd and user, `rbee_tests::harness::remote`), the keeper reaches it with
//! `--hive gpu` through its ControlMaster tunnel, and SIGINT to the keeper → the fake hub (on this
//! side of the veth) sees the remote hive's upstream connections close, and → the keeper exits 130
//! (after its DELETE went through the tunnel and was answered).

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rbee_tests::harness::capture::Capture;
use rbee_tests::harness::remote::{SshHost, ALIAS};
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};

use crate::proc::{output_ok, Ctx, Killer};
use crate::sigint;

const REPO: &str = "bench/ssh-cancel";
const FILE: &str = "model.bin";
const RATE: u64 = 4 << 20;
const MID_BODY: u64 = 64 << 10;
/// The acceptance bound: the remote upstream connection closes within 1 s of Ctrl+C.
const TARGET_MS: f64 = 1000.0;

pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    let (warmup, trials) = (ctx.pick(2, 1), ctx.pick(30, 5));
    let Some(host) = SshHost::start("the ssh benchmark") else { bail!("no SSH test host (see above)") };
    let hub = FakeHub::start(HubConfig { rate: RATE, bind: Some(host.host_ip().into()), ..HubConfig::default() });
    hub.add_repo(RepoSpec::new(REPO).lfs(FILE, 1 << 30));
    hub.sha256(REPO, FILE);
    for verb in ["install", "start"] {
        output_ok(
            rbee(ctx, &host, hub.endpoint()).args(["hive", verb, "--host", ALIAS]),
            &format!("rbee hive {verb}"),
        )?;
    }
    let mut killer = Killer::new()?;
    let (closed, exited) =
        sigint::trials((warmup, trials), &host.hf_cache(), REPO, || trial(ctx, &host, &hub, &mut killer))?;
    let _ = rbee(ctx, &host, hub.endpoint()).args(["hive", "stop", "--host", ALIAS]).output();
    Ok(report(&closed, &exited))
}

fn rbee(ctx: &Ctx, host: &SshHost, endpoint: &str) -> Command {
    let mut cmd = Command::new(ctx.bin("rbee"));
    cmd.env("RBEE_SSH_COMMAND", host.ssh_command())
        .env("HOME", host.keeper_home())
        .env("XDG_STATE_HOME", host.keeper_home().join(".local/state"))
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_TOKEN")
        .env_remove("RBEE_HIVE_URL")
        .stdin(Stdio::null());
    cmd
}

/// One trial: (ms to the last open upstream connection closed, ms to keeper exit) from SIGINT.
fn trial(ctx: &Ctx, host: &SshHost, hub: &FakeHub, killer: &mut Killer) -> Result<(f64, f64)> {
    let n = hub.stats().connections.len();
    let mut keeper = rbee(ctx, host, hub.endpoint())
        .args(["model", "download", "--hive", ALIAS, REPO, FILE])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // The keeper announces its job once its Ctrl+C handler is in place; a connection the hub
    // records late from the previous trial is closed by then.
    let stderr = Capture::start(keeper.stderr.take().context("stderr")?);
    let announced = stderr.wait_for_line(Duration::from_secs(30), |_| true).filter(|l| l.starts_with("📋 job"));
    let live = |s: &rbee_tests::hub::Stats| {
        s.connections.iter().skip(n).any(|c| c.closed_at.is_none() && c.bytes_sent >= MID_BODY)
    };
    if announced.is_none() || !hub.wait_until(Duration::from_secs(30), live) {
        let _ = keeper.kill();
        let _ = keeper.wait();
        bail!("no upstream connection through the remote hive: {:?}", stderr.text());
    }
    sigint::interrupt(hub, n, killer, &mut keeper, || format!("{:?}", stderr.text()))
}

fn report(closed: &[f64], exited: &[f64]) -> String {
    let t = sigint::table(
        [
            ("the hub saw the remote hive's upstream connections close", closed),
            ("the keeper exited 130 (DELETE through the tunnel answered)", exited),
        ],
        &[50.0, 95.0, 100.0],
        100.0,
        TARGET_MS,
    );
    format!(
        "## Cancel latency through an SSH tunnel\n\n\
         {} trials. The hive runs as another user in a network namespace of its own, reached only through \
         OpenSSH (`rbee hive install|start --host {ALIAS}`, then `rbee --hive {ALIAS} model download {REPO} \
         {FILE}` through the keeper's ControlMaster tunnel, a unix socket forwarded to the remote's \
         127.0.0.1:7835). The fake hub listens on this side of the veth, throttled to {} MiB/s per \
         connection; SIGINT goes once a connection received ≥ {} KiB, after a random 0–20 ms delay. Clock: one \
         `Instant` in the bench process before the `kill -INT`; the hub timestamps each close.\n\n{}",
        closed.len(),
        RATE >> 20,
        MID_BODY >> 10,
        t
    )
}
