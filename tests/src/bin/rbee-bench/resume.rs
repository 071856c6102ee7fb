//! Resume efficiency: Ctrl+C at ~50 %, download again; what the second attempt fetched vs what
//! was missing, and what the cancel threw away.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};

use crate::proc::{file_len, find_files, note, Ctx, Hive, Killer};
use crate::table::{mib, size, Table};

const REPO: &str = "bench/resume";
const FILE: &str = "model.bin";

pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    let total: u64 = ctx.pick(256 << 20, 64 << 20);
    let rate: u64 = ctx.pick(64 << 20, 32 << 20);
    let hub = FakeHub::start(HubConfig { rate, ..HubConfig::default() });
    hub.add_repo(RepoSpec::new(REPO).lfs(FILE, total));
    hub.sha256(REPO, FILE);
    let cache = ctx.fresh_dir("resume-cache")?;
    let hive = Hive::spawn(ctx, hub.endpoint(), &cache, &[])?;
    let keeper = || {
        Command::new(ctx.bin("rbee"))
            .args(["--hive", &hive.url, "model", "download", REPO, FILE])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    note(format!("resume: {} at {} MiB/s, Ctrl+C at 50 %", size(total), rate >> 20));
    let mut first = keeper()?;
    let half =
        hub.wait_until(Duration::from_secs(60), |s| s.connections.first().is_some_and(|c| c.bytes_sent >= total / 2));
    if !half {
        let _ = first.kill();
        bail!("the first download never reached 50 %");
    }
    Killer::new()?.sigint(first.id())?;
    let status = first.wait()?;
    if status.code() != Some(130) {
        bail!("the cancelled keeper exited with {status}");
    }
    hub.wait_closed(0, Duration::from_secs(10)).context("the first connection never closed")?;
    let partial = find_files(&cache, ".incomplete");
    let kept = partial.first().map_or(0, |p| file_len(p));
    let sent1 = hub.stats().connections[0].bytes_sent;
    hub.set_rate(0);
    note("resume: downloading again, unthrottled");
    let status = keeper()?.wait()?;
    if !status.success() {
        bail!("the resumed download failed: {status}");
    }
    let stats = hub.stats();
    let later: Vec<_> = stats.connections.iter().skip(1).collect();
    let fetched2: u64 = later.iter().map(|c| c.bytes_sent).sum();
    let range = later.first().and_then(|c| c.range.clone()).unwrap_or_else(|| "none".into());
    let missing = total - kept;
    let mut t = Table::new(&["", "bytes", "share of the file"]);
    let pct = |b: u64| format!("{:.2} %", b as f64 * 100.0 / total as f64);
    t.row(&["file".to_owned(), format!("{total} ({})", mib(total as f64)), pct(total)]);
    t.row(&["sent by the CDN before the cancel".to_owned(), format!("{sent1} ({})", mib(sent1 as f64)), pct(sent1)]);
    t.row(&["kept in `.incomplete` after the cancel".to_owned(), format!("{kept} ({})", mib(kept as f64)), pct(kept)]);
    let lost = sent1.saturating_sub(kept);
    t.row(&["received but discarded by the cancel".to_owned(), format!("{lost} ({})", mib(lost as f64)), pct(lost)]);
    t.row(&["missing (file − kept)".to_owned(), format!("{missing} ({})", mib(missing as f64)), pct(missing)]);
    t.row(&[format!("fetched by the 2nd download (`Range: {range}`)"), format!("{fetched2}"), pct(fetched2)]);
    let eff = fetched2 as f64 / missing as f64;
    let overhead = (sent1 + fetched2) as f64 / total as f64;
    Ok(format!(
        "## 5. Resume efficiency\n\n\
         A {} file throttled to {} MiB/s; SIGINT to the keeper once the CDN sent ≥ 50 %, then the same \
         `rbee model download` again, unthrottled. Second download fetched {:.4}× the missing bytes ({} \
         connection(s)); over both attempts the CDN sent {overhead:.4}× the file size.\n\n{}",
        size(total),
        rate >> 20,
        eff,
        later.len(),
        t.done()
    ))
}
