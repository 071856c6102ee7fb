//! What durability costs: a download into a cache on a real disk (never tmpfs, where `fsync` is
//! free), with the hive's `fdatasync`/`fsync` calls and with `--test-no-fsync`, alternating;
//! median wall time of each (keeper start → the job's `done`, which comes after the publish).
//! One stream (loopback, the default) syncs the file once before its rename; in parts (the CDN
//! capped per connection, so the hive widens) a part map marks a block only after an
//! `fdatasync` of the data, so that row shows the per-block cost too. `sync(1)` runs before each
//! download so none starts with another's dirty pages.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};

use crate::proc::{file_len, note, timed, Ctx, Hive};
use crate::table::{median, size, Table};

const REPO: &str = "bench/durable";

pub(crate) fn run(ctx: &Ctx, disk: &Path) -> Result<String> {
    let (big, runs) = (ctx.pick(2u64 << 30, 256 << 20), ctx.pick(3, 1));
    let cap = 64u64 << 20;
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(RepoSpec::new(REPO).lfs("big.bin", big));
    hub.sha256(REPO, "big.bin");
    let fs = Command::new("findmnt").args(["-n", "-o", "FSTYPE", "-T"]).arg(disk).output().context("findmnt")?;
    let fs = String::from_utf8_lossy(&fs.stdout).trim().to_owned();
    let mut t = Table::new(&["download", "with fsync (median)", "--test-no-fsync (median)", "cost", "runs"]);
    for (what, rate) in [("one stream, unthrottled", 0), ("in parts, CDN capped at 64 MiB/s per connection", cap)] {
        hub.set_rate(rate);
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for r in 0..runs {
            for (durable, list) in [(true, &mut on), (false, &mut off)] {
                note(format!("durable: {what}, run {}/{runs}, fsync {}", r + 1, if durable { "on" } else { "off" }));
                list.push(once(ctx, &hub, disk, big, durable)?);
            }
        }
        let (a, b) = (median(&on), median(&off));
        t.row(&[
            format!("{} {what}", size(big)),
            format!("{a:.2} s"),
            format!("{b:.2} s"),
            format!("{:+.2} s ({:+.0} %)", a - b, (a - b) * 100.0 / b),
            runs.to_string(),
        ]);
    }
    Ok(format!(
        "## 10. Durability: what fsync costs\n\nA {} download into a cache on `{}` ({fs}), keeper start → done. \
         The blob is `fdatasync`ed before its rename into `blobs/`, `blobs/` `fsync`ed after; refs, links and maps \
         likewise (hive/src/cache/fs).\n\n{}\n",
        size(big),
        disk.display(),
        t.done()
    ))
}

/// One download of `big.bin` into a fresh cache under `disk`; its wall seconds.
fn once(ctx: &Ctx, hub: &FakeHub, disk: &Path, big: u64, durable: bool) -> Result<f64> {
    let dir = tempfile::Builder::new().prefix("rbee-bench-durable").tempdir_in(disk)?;
    let cache = dir.path().join("cache");
    let _ = Command::new("sync").status();
    let extra: &[&str] = if durable { &[] } else { &["--test-no-fsync"] };
    let hive = Hive::spawn(ctx, hub.endpoint(), &cache, extra)?;
    let mut cmd = Command::new(ctx.bin("rbee"));
    cmd.args(["--hive", &hive.url, "model", "download", REPO, "big.bin"]);
    let run = timed(&cmd, dir.path(), "rbee model download")?;
    let published = cache.join("models--bench--durable/snapshots").join(hub.commit(REPO)).join("big.bin");
    anyhow::ensure!(file_len(&published) == big, "{} is not {big} bytes", published.display());
    Ok(run.wall)
}
