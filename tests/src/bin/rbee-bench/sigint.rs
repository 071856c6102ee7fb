//! What the two SIGINT benchmarks share (`cancel`, `ssh`): the trial loop, the signal and the
//! clock around it, and the latency table.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rbee_tests::hub::FakeHub;

use crate::proc::{ms, note, Killer};
use crate::table::{below, percentile, Table};

/// The fake hub's pacing period (it sends `rate / 50` bytes at a time).
const PERIOD_US: u64 = 20_000;

/// Runs `warmup + trials` trials, each from an empty `cache` (the next one ramps up to all its
/// parts again): the (close, exit) figures of the counted ones.
pub(crate) fn trials(
    (warmup, trials): (usize, usize),
    cache: &Path,
    repo: &str,
    mut trial: impl FnMut() -> Result<(f64, f64)>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut closed, mut exited) = (Vec::new(), Vec::new());
    let repo_dir = format!("models--{}", repo.replace('/', "--"));
    note(format!("{repo}: {warmup} warm-up + {trials} trials"));
    for i in 0..warmup + trials {
        let (c, e) = trial().with_context(|| format!("trial {i}"))?;
        for dir in [repo_dir.as_str(), ".locks"] {
            let _ = std::fs::remove_dir_all(cache.join(dir));
        }
        if i >= warmup {
            closed.push(c);
            exited.push(e);
        }
    }
    Ok((closed, exited))
}

/// SIGINT to `keeper` at a random phase of the hub's pacing, then: (ms until the last of the
/// connections open since the `skip`th closed, ms until the keeper exited), both from the
/// moment the signal was sent. Fails unless the keeper exits 130; `said` tells what it printed.
pub(crate) fn interrupt(
    hub: &FakeHub,
    skip: usize,
    killer: &mut Killer,
    keeper: &mut Child,
    said: impl FnOnce() -> String,
) -> Result<(f64, f64)> {
    // The hub sends a paced chunk every 20 ms and wait_until wakes right after one: sleep a random
    // part of that period so the signal lands at a uniformly random phase, like a human's Ctrl+C.
    std::thread::sleep(Duration::from_micros(jitter() % PERIOD_US));
    let open: Vec<u64> =
        hub.stats().connections.iter().skip(skip).filter(|c| c.closed_at.is_none()).map(|c| c.id).collect();
    let t0 = Instant::now();
    killer.sigint(keeper.id())?;
    let status = keeper.wait()?;
    let exited = t0.elapsed();
    if status.code() != Some(130) {
        bail!("the keeper exited with {status}, not 130; it said: {}", said());
    }
    let mut last = t0;
    for id in &open {
        last = last.max(hub.wait_closed(*id, Duration::from_secs(10)).context("a connection never closed")?);
    }
    Ok((ms(last.saturating_duration_since(t0)), ms(exited)))
}

/// A random number (std's hasher keys are random per process).
fn jitter() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// The table of both figures: the `quantiles` (100: max) of each, and the verdict on the
/// `judged` one against `target_ms`.
pub(crate) fn table(rows: [(&str, &[f64]); 2], quantiles: &[f64], judged: f64, target_ms: f64) -> String {
    let name = |q: f64| if q >= 100.0 { "max".to_owned() } else { format!("p{q:.0}") };
    let target = if judged >= 100.0 { "target".to_owned() } else { format!("target {}", name(judged)) };
    let mut headers = vec!["from SIGINT to …".to_owned()];
    headers.extend(quantiles.iter().map(|&q| name(q)));
    headers.extend([target, "verdict".to_owned()]);
    let mut t = Table::new(&headers.iter().map(String::as_str).collect::<Vec<_>>());
    for (what, s) in rows {
        let mut cells = vec![what.to_owned()];
        cells.extend(quantiles.iter().map(|&q| format!("{:.1} ms", percentile(s, q))));
        cells.extend([format!("< {target_ms:.0} ms"), below(percentile(s, judged), target_ms, "ms")]);
        t.row(&cells);
    }
    t.done()
}
