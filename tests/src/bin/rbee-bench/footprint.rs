//! Binary sizes and `--version` start-up time (vs huggingface_hub's CLI).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Result};

use crate::proc::{ms, note, Ctx};
use crate::table::{below, mean, median, percentile, Table};

const KEEPER_SIZE_TARGET_MIB: f64 = 6.0;
const VERSION_TARGET_MS: f64 = 5.0;

pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    let mut sizes = Table::new(&["binary", "size", "stripped", "target", "verdict"]);
    for name in ["rbee", "rbee-hive"] {
        let path = ctx.bin(name);
        let bytes = std::fs::metadata(&path)?.len() as f64 / f64::from(1 << 20);
        let (target, verdict) = if name == "rbee" {
            (format!("≤ {KEEPER_SIZE_TARGET_MIB} MiB"), below(bytes, KEEPER_SIZE_TARGET_MIB + 1e-9, "MiB"))
        } else {
            ("—".to_owned(), "—".to_owned())
        };
        sizes.row(&[format!("`{name}`"), format!("{bytes:.2} MiB"), stripped(&path), target, verdict]);
    }
    let n = ctx.pick(200, 30);
    let mut starts = Table::new(&["command", "runs", "mean", "p50", "min", "max", "target", "verdict"]);
    let rbee = ctx.bin("rbee");
    let mut cases: Vec<(String, std::path::PathBuf, usize)> =
        vec![("`/bin/true` (spawn floor)".into(), "/bin/true".into(), n), ("`rbee --version`".into(), rbee, n)];
    for cli in ["hf", "huggingface-cli"] {
        match ctx.venv_bin(cli) {
            Some(p) => cases.push((format!("`{cli} --version` (venv)"), p, ctx.pick(10, 3))),
            None => note(format!("footprint: no `{cli}` in the venv")),
        }
    }
    for (label, prog, runs) in cases {
        note(format!("footprint: {label} × {runs}"));
        let s = spawn_times(&prog, runs)?;
        let (target, verdict) = if label.starts_with("`rbee") {
            (format!("mean < {VERSION_TARGET_MS} ms"), below(mean(&s), VERSION_TARGET_MS, "ms"))
        } else {
            ("—".into(), "—".into())
        };
        starts.row(&[
            label,
            runs.to_string(),
            format!("{:.2} ms", mean(&s)),
            format!("{:.2} ms", median(&s)),
            format!("{:.2} ms", percentile(&s, 0.0)),
            format!("{:.2} ms", percentile(&s, 100.0)),
            target,
            verdict,
        ]);
    }
    Ok(format!(
        "## 4. Footprint\n\n\
         Release binaries as `cargo build --release` leaves them (profile: see `[profile.release]` in \
         `Cargo.toml`).\n\n{}\
         Start-up: wall time of spawning `<cmd> --version` and waiting for its exit (output to a pipe), \
         back-to-back runs after one warm-up; `/bin/true` shows what process creation alone costs here.\n\n{}",
        sizes.done(),
        starts.done()
    ))
}

fn stripped(path: &Path) -> String {
    match Command::new("file").arg("-L").arg(path).output() {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("not stripped") => "no".into(),
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("stripped") => "yes".into(),
        _ => "?".into(),
    }
}

/// Wall ms of `runs` runs of `prog --version` (after one warm-up).
fn spawn_times(prog: &Path, runs: usize) -> Result<Vec<f64>> {
    let once = || -> Result<f64> {
        let t = Instant::now();
        let out = Command::new(prog).arg("--version").stdin(Stdio::null()).stderr(Stdio::null()).output()?;
        let dt = ms(t.elapsed());
        if !out.status.success() {
            bail!("`{} --version` failed: {}", prog.display(), out.status);
        }
        Ok(dt)
    };
    once()?;
    (0..runs).map(|_| once()).collect()
}
