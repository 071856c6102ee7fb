//! Cancel latency: SIGINT to a keeper with 16 parts in flight → the hub sees every part's CDN
//! connection close, and → the keeper exits 130 (it exits right after the hive answered its
//! `DELETE`, which the hive only does once the job's task is dropped).

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Result};
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};

use crate::proc::{Ctx, Hive, Killer};
use crate::sigint;

const REPO: &str = "bench/cancel";
const FILE: &str = "model.bin";
/// Throttle so each trial is cancelled mid-body, never near the end.
const RATE: u64 = 4 << 20;
/// Bytes each open part must have received before the signal.
const MID_BODY: u64 = 64 << 10;
/// Parts in flight at the signal (the hive's default `--max-parts`).
const PARTS: usize = 16;
const TARGET_MS: f64 = 50.0;
pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    let (warmup, trials) = (ctx.pick(3, 1), ctx.pick(100, 10));
    let hub = FakeHub::start(HubConfig { rate: RATE, ..HubConfig::default() });
    hub.add_repo(RepoSpec::new(REPO).lfs(FILE, 1 << 30));
    let cache = ctx.fresh_dir("cancel-cache")?;
    let hive = Hive::spawn(ctx, hub.endpoint(), &cache, &[])?;
    hub.sha256(REPO, FILE);
    let mut killer = Killer::new()?;
    let (closed, exited) = sigint::trials((warmup, trials), &cache, REPO, || trial(ctx, &hub, &hive, &mut killer))?;
    let cancelled = hive.jobs()?.iter().filter(|j| j.1 == "cancelled").count();
    Ok(report(&closed, &exited, cancelled, warmup + trials))
}

/// One trial: (ms to CDN close, ms to keeper exit), both from the moment SIGINT was sent.
fn trial(ctx: &Ctx, hub: &FakeHub, hive: &Hive, killer: &mut Killer) -> Result<(f64, f64)> {
    let n = hub.stats().connections.len();
    let mut keeper = Command::new(ctx.bin("rbee"))
        .args(["--hive", &hive.url, "model", "download", REPO, FILE])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let in_flight = |s: &rbee_tests::hub::Stats| {
        s.connections[n.min(s.connections.len())..]
            .iter()
            .filter(|c| c.closed_at.is_none() && c.bytes_sent >= MID_BODY)
            .count()
    };
    if !hub.wait_until(Duration::from_secs(20), |s| in_flight(s) >= PARTS) {
        let _ = keeper.kill();
        bail!("never {PARTS} parts in flight: {:?}", keeper.wait_with_output().map(|o| o.stderr));
    }
    let stderr = keeper.stderr.take();
    sigint::interrupt(hub, n, killer, &mut keeper, || {
        let mut said = String::new();
        let _ = stderr.map(|mut e| std::io::Read::read_to_string(&mut e, &mut said));
        said
    })
}

fn report(closed: &[f64], exited: &[f64], cancelled: usize, total: usize) -> String {
    let trials = closed.len();
    let t = sigint::table(
        [
            ("the hub saw the last of the 16 parts' connections close", closed),
            ("the keeper exited 130 (DELETE answered)", exited),
        ],
        &[50.0, 95.0, 99.0, 100.0],
        99.0,
        TARGET_MS,
    );
    format!(
        "## 1. Cancel latency\n\n\
         {trials} trials. Each trial runs `rbee --hive URL model download {REPO} {FILE}` (release build, stdout \
         not a TTY) against one hive; the fake hub (in the bench process) throttles the CDN to {} MiB/s per \
         connection (one chunk every 20 ms), the hive fetches the 1 GiB file in parts, and SIGINT is sent once \
         {PARTS} part connections are open and each received ≥ {} KiB, after a random 0–20 ms delay so it lands \
         at a random point between two chunks (each trial starts from an empty cache). Clock: one `Instant` in the bench process, taken *before* \
         asking a resident `bash` to `kill -INT` the keeper; the hub timestamps the moment its read of the \
         socket returns EOF/reset, and the row takes the last of the {PARTS} connections to close; keeper exit = `waitpid` returning. The keeper exits right after the hive \
         answers `DELETE /v1/jobs/{{id}}`, which it does only once the job task is dropped and no disk write is \
         in flight, so the second row bounds \"DELETE returned\" from above. Jobs the hive lists as \
         `cancelled` afterwards: {cancelled} of {} (incl. warm-up).\n\n{}",
        RATE >> 20,
        MID_BODY >> 10,
        total,
        t
    )
}
