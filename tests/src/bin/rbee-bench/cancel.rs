//! Cancel latency: SIGINT to a keeper with 16 parts in flight → the hub sees every part's CDN
//! connection close, and → the keeper exits 130 (it exits right after the hive answered its
//! `DELETE`, which the hive only does once the job's task is dropped).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};

use crate::proc::{ms, note, Ctx, Hive, Killer};
use crate::table::{below, percentile, Table};

const REPO: &str = "bench/cancel";
const FILE: &str = "model.bin";
/// Throttle so each trial is cancelled mid-body, never near the end.
const RATE: u64 = 4 << 20;
/// Bytes each open part must have received before the signal.
const MID_BODY: u64 = 64 << 10;
/// Parts in flight at the signal (the hive's default `--max-parts`).
const PARTS: usize = 16;
const TARGET_MS: f64 = 50.0;
/// The fake hub's pacing period (it sends `rate / 50` bytes at a time).
const PERIOD_US: u64 = 20_000;

/// A random number (std's hasher keys are random per process).
pub(crate) fn jitter() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    let (warmup, trials) = (ctx.pick(3, 1), ctx.pick(100, 10));
    let hub = FakeHub::start(HubConfig { rate: RATE, ..HubConfig::default() });
    hub.add_repo(RepoSpec::new(REPO).lfs(FILE, 1 << 30));
    let cache = ctx.fresh_dir("cancel-cache")?;
    let hive = Hive::spawn(ctx, hub.endpoint(), &cache, &[])?;
    hub.sha256(REPO, FILE);
    let mut killer = Killer::new()?;
    let (mut closed, mut exited) = (Vec::new(), Vec::new());
    note(format!("cancel: {warmup} warm-up + {trials} trials"));
    for i in 0..warmup + trials {
        let (c, e) = trial(ctx, &hub, &hive, &mut killer).with_context(|| format!("trial {i}"))?;
        // The next trial starts from nothing, so it ramps up to 16 parts again.
        for dir in ["models--bench--cancel", ".locks"] {
            let _ = std::fs::remove_dir_all(cache.join(dir));
        }
        if i >= warmup {
            closed.push(c);
            exited.push(e);
        }
    }
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
    // The hub sends a paced chunk every 20 ms and wait_until wakes right after one: sleep a random
    // part of that period so the signal lands at a uniformly random phase, like a human's Ctrl+C.
    std::thread::sleep(Duration::from_micros(jitter() % PERIOD_US));
    let open: Vec<u64> =
        hub.stats().connections.iter().skip(n).filter(|c| c.closed_at.is_none()).map(|c| c.id).collect();
    let t0 = Instant::now();
    killer.sigint(keeper.id())?;
    let status = keeper.wait()?;
    let exited = t0.elapsed();
    let mut last = t0;
    for id in &open {
        last = last.max(hub.wait_closed(*id, Duration::from_secs(10)).context("a part's connection never closed")?);
    }
    if status.code() != Some(130) {
        bail!("the keeper exited with {status}, not 130");
    }
    Ok((ms(last.saturating_duration_since(t0)), ms(exited)))
}

fn report(closed: &[f64], exited: &[f64], cancelled: usize, total: usize) -> String {
    let trials = closed.len();
    let mut t = Table::new(&["from SIGINT to …", "p50", "p95", "p99", "max", "target p99", "verdict"]);
    for (what, s) in [
        ("the hub saw the last of the 16 parts' connections close", closed),
        ("the keeper exited 130 (DELETE answered)", exited),
    ] {
        let p = |q| percentile(s, q);
        t.row(&[
            what.to_owned(),
            format!("{:.1} ms", p(50.0)),
            format!("{:.1} ms", p(95.0)),
            format!("{:.1} ms", p(99.0)),
            format!("{:.1} ms", p(100.0)),
            format!("< {TARGET_MS:.0} ms"),
            below(p(99.0), TARGET_MS, "ms"),
        ]);
    }
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
        t.done()
    )
}
