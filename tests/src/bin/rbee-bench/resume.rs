//! Resume efficiency: Ctrl+C at ~50 % of a download in parts, download again; what the second
//! attempt fetched vs what was missing, and what the cancel threw away (per connection).

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Result};
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};

use crate::proc::{file_len, find_files, note, Ctx, Hive, Killer};
use crate::table::{mib, size, Table};

const REPO: &str = "bench/resume";
const FILE: &str = "model.bin";

pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    let total: u64 = ctx.pick(256 << 20, 64 << 20);
    let rate: u64 = ctx.pick(8 << 20, 8 << 20);
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
    note(format!("resume: {} at {} MiB/s per connection, Ctrl+C at 50 %", size(total), rate >> 20));
    let mut first = keeper()?;
    let half = hub.wait_until(Duration::from_secs(60), |s| s.cdn_bytes >= total / 2);
    if !half {
        let _ = first.kill();
        bail!("the first download never reached 50 %");
    }
    Killer::new()?.sigint(first.id())?;
    let status = first.wait()?;
    if status.code() != Some(130) {
        bail!("the cancelled keeper exited with {status}");
    }
    if !hub.wait_all_closed(Duration::from_secs(10)) {
        bail!("a part's connection never closed");
    }
    // The hive's peak RSS per phase: the throttled download and its cancel, then the resume.
    let peak_cancel = hive.hwm_kib();
    hive.reset_peak()?;
    let stats = hub.stats();
    let (sent1, first_conns) = (stats.cdn_bytes, stats.connections.len());
    let open_at_cancel = stats.connections.iter().filter(|c| c.closed_by_client()).count() as u64;
    let kept = find_files(&cache, ".incomplete").first().map_or(0, |p| file_len(p))
        + find_files(&cache, ".partmap").first().map_or(0, |p| done_in_part_map(p));
    hub.set_rate(0);
    note("resume: downloading again, unthrottled");
    let status = keeper()?.wait()?;
    if !status.success() {
        bail!("the resumed download failed: {status}");
    }
    let peak_resume = hive.hwm_kib();
    let stats = hub.stats();
    let later: Vec<_> = stats.connections.iter().skip(first_conns).collect();
    let fetched2: u64 = later.iter().map(|c| c.bytes_sent).sum();
    let missing = total - kept;
    let unsent = total - sent1;
    let per_conn = fetched2.saturating_sub(unsent) as f64 / open_at_cancel.max(1) as f64;
    let mut t = Table::new(&["", "bytes", "share of the file"]);
    let pct = |b: u64| format!("{:.2} %", b as f64 * 100.0 / total as f64);
    t.row(&["file".to_owned(), format!("{total} ({})", mib(total as f64)), pct(total)]);
    t.row(&["sent by the CDN before the cancel".to_owned(), format!("{sent1} ({})", mib(sent1 as f64)), pct(sent1)]);
    t.row(&[
        "kept after the cancel (blocks the part map marks done)".to_owned(),
        format!("{kept} ({})", mib(kept as f64)),
        pct(kept),
    ]);
    let lost = sent1.saturating_sub(kept);
    t.row(&["received but discarded by the cancel".to_owned(), format!("{lost} ({})", mib(lost as f64)), pct(lost)]);
    t.row(&["missing (file − kept)".to_owned(), format!("{missing} ({})", mib(missing as f64)), pct(missing)]);
    t.row(&[
        format!("fetched by the 2nd download ({} ranged requests)", later.len()),
        format!("{fetched2}"),
        pct(fetched2),
    ]);
    for (phase, kib) in [("throttled download and cancel", peak_cancel), ("resume, unthrottled", peak_resume)] {
        t.row(&[format!("hive peak RSS: {phase}"), format!("{kib} KiB ({})", mib(kib as f64 * 1024.0)), String::new()]);
    }
    let eff = fetched2 as f64 / missing as f64;
    let overhead = (sent1 + fetched2) as f64 / total as f64;
    Ok(format!(
        "## 5. Resume efficiency\n\n\
         A {} file fetched in parts, each connection throttled to {} MiB/s; SIGINT to the keeper once the CDN \
         sent ≥ 50 % ({open_at_cancel} part connections open), then the same `rbee model download` again, \
         unthrottled. Second download fetched {:.4}× the missing bytes; over both attempts the CDN sent \
         {overhead:.4}× the file size. Re-fetched beyond what the CDN had not sent before the cancel: \
         {:.0} KiB per connection open at the cancel (target ≤ 1 MiB per connection) — {}.\n\n{}",
        size(total),
        rate >> 20,
        eff,
        per_conn / 1024.0,
        crate::table::below(per_conn / f64::from(1 << 20), 1.0, "MiB"),
        t.done()
    ))
}

/// Bytes a part map (`rbee-parts 1 {size} {block}\n` + one byte per block) marks done.
fn done_in_part_map(path: &std::path::Path) -> u64 {
    let map = std::fs::read(path).unwrap_or_default();
    let Some(nl) = map.iter().position(|b| *b == b'\n') else { return 0 };
    let head = String::from_utf8_lossy(&map[..nl]).into_owned();
    let nums: Vec<u64> = head.split(' ').skip(2).filter_map(|n| n.parse().ok()).collect();
    let ones = map[nl + 1..].iter().filter(|b| **b == b'1').count() as u64;
    match nums[..] {
        [size, block] => (ones * block).min(size),
        _ => 0,
    }
}
