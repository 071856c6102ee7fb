//! CDNs that pace every request from its first byte (issue 27 §5), where section 8's nginx
//! `limit_rate` lets each request's first second through unpaced (so 2–8 MiB ranges are never
//! capped there): the fake hub's own CDN at 16 MiB/s per connection, and nginx with a small
//! `sendfile_max_chunk`. First a curl check of what each CDN does to one range, then rbee against
//! aria2c -x16 and hf_transfer, 256 MiB and 2 GiB on each.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use rbee_tests::harness::nginx::Nginx;
use rbee_tests::hub::{FakeHub, HubConfig};

use crate::cdn::{nginx_version, spec, table, wall_of, Bench, REPO};
use crate::proc::{note, output_ok, Ctx};
use crate::table::{median, size, Table};
use crate::tools::{Cdn, Sample, Tool};

/// Bytes/s each connection of the paced CDN gets.
const RATE: u64 = 16 << 20;
/// rbee's target: at most this times the fastest peer's median wall, plus [`NOISE`].
const TARGET: f64 = 1.0;
const NOISE: f64 = 0.05;
/// The nginx servers: `limit_rate` as section 8 runs it; with a small `sendfile_max_chunk`
/// (a wait after every 64 KiB, whole milliseconds rounded down: 3 ms at 16m); and the one this
/// section runs the tools on, whose 64 KiB wait is exactly 4 ms.
const NGINX: [&str; 3] =
    ["16m", "16m; limit_rate_after 0; sendfile_max_chunk 64k", "16000k; limit_rate_after 0; sendfile_max_chunk 64k"];

pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    let (small, big) = (ctx.pick(256u64 << 20, 64 << 20), ctx.pick(2u64 << 30, 256 << 20));
    let hub = FakeHub::start(HubConfig { rate: RATE, ..HubConfig::default() });
    hub.add_repo(spec(small, big));
    let www = ctx.fresh_dir("paced-www")?;
    let sha = seed(&hub, &www)?;
    let nginx = Nginx::start(&ctx.fresh_dir("paced-nginx")?, &www, &NGINX.map(Some))?;
    let mut md = intro();
    if std::env::var_os("RBEE_PACED_ONLY").is_none() {
        let _ =
            write!(md, "#### What one request gets (curl, one connection)\n\n{}", check(&hub, &nginx, &sha, small)?);
    }
    let paced_nginx = FakeHub::start(HubConfig { cdn: Some(nginx.url(2)), ..HubConfig::default() });
    paced_nginx.add_repo(spec(small, big));
    let b = Bench::new(ctx, vec![(Cdn::Paced, hub), (Cdn::PacedNginx, paced_nginx)])?;
    let tools: Vec<Tool> = [Tool::Rbee, Tool::Aria2, Tool::HfTransfer]
        .into_iter()
        .filter(|t| {
            std::env::var("RBEE_PACED_TOOLS").map_or(true, |only| only.split(',').any(|o| t.name().starts_with(o)))
        })
        .collect();
    // `RBEE_PACED_ONLY=nginx:2GiB` (CDN `fake`/`nginx`, size as the headings print it) runs one of the four.
    let only = std::env::var("RBEE_PACED_ONLY").ok();
    let wanted = |cdn: &str, bytes: u64| only.as_deref().is_none_or(|o| o == format!("{cdn}:{}", size(bytes)));
    let load =
        || fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" ");
    for (cdn, key, name) in [
        (Cdn::Paced, "fake", "the fake hub's CDN"),
        (Cdn::PacedNginx, "nginx", &format!("nginx `limit_rate {}`", NGINX[2])),
    ] {
        for (file, bytes, runs) in [("small.bin", small, ctx.pick(5, 1)), ("big.bin", big, ctx.pick(3, 1))] {
            let runs = std::env::var("RBEE_PACED_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(runs);
            if !wanted(key, bytes) {
                continue;
            }
            let before = load();
            let rows = b.rows(cdn, file, bytes, runs, &tools)?;
            let _ = write!(
                md,
                "#### {name}, {}, {runs} rounds (load average {before} before, {} after)\n\n{}{}\n\n",
                size(bytes),
                load(),
                table(&rows, bytes),
                verdict(&rows, bytes)
            );
        }
    }
    Ok(md)
}

/// Writes the hub's blobs where nginx serves them (fetched unpaced); the small file's sha256.
fn seed(hub: &FakeHub, www: &Path) -> Result<String> {
    hub.set_rate(0);
    for file in ["small.bin", "big.bin"] {
        let sha = hub.sha256(REPO, file);
        let blob = www.join("blobs").join(REPO).join(&sha);
        fs::create_dir_all(blob.parent().context("blob dir")?)?;
        note(format!("paced: writing {file} for nginx"));
        curl(&[&format!("{}/blobs/{REPO}/{sha}", hub.cdn_url()), "-o", &blob.to_string_lossy()])?;
    }
    hub.set_rate(RATE);
    Ok(hub.sha256(REPO, "small.bin"))
}

fn intro() -> String {
    format!(
        "### 8b. Paced from the first byte, {mib} MiB/s per connection\n\n\
         What nginx's `limit_rate` caps: it allows a request `rate × (seconds since it started + 1)` bytes and \
         waits after each send for as long as what it sent takes at the rate (`ngx_http_write_filter`). With \
         `sendfile` and no `sendfile_max_chunk`, one send carries as much as the socket takes, so a request's \
         first {mib} MiB go out at once and only what follows is paced: it caps a long request after its first \
         second (aria2c's splits, one stream), never a 2–8 MiB range (rbee's parts) nor a 10 MiB chunk \
         (hf_transfer's), so the rows above can be bypassed. `limit_rate_after 0` changes nothing (0 is its \
         default). A small `sendfile_max_chunk` does pace from the first byte: a wait after every 64 KiB, in \
         whole milliseconds rounded down (3 ms at `16m`: 20.8 MiB/s; exactly 4 ms at `16000k`: 15.6 MiB/s). \
         Two CDNs that pace every request from its first byte, then: the test harness's own \
         (`tests/src/hub/cdn.rs`, in the bench process: writes of 20 ms of the rate, each due at `start + bytes \
         sent / rate`, one request per connection, generated bytes) at {mib} MiB/s per connection, and nginx \
         with `limit_rate {}` (keep-alive, sendfile from the scratch directory). The fake hub answers the \
         resolve and redirects to each. Tools as in section 8; each round runs every tool once, the first tool \
         of a round rotating.\n\n",
        NGINX[2],
        mib = RATE >> 20
    )
}

/// Whether rbee's median is within [`TARGET`] (+ [`NOISE`]) of the fastest peer's.
fn verdict(rows: &[(Tool, Vec<Sample>)], bytes: u64) -> String {
    let (peer, fastest) = [Tool::Aria2, Tool::HfTransfer]
        .iter()
        .filter_map(|t| wall_of(rows, *t).map(|w| (*t, w)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(("no peer", f64::NAN), |(t, w)| (t.name(), w));
    let rbee = wall_of(rows, Tool::Rbee).unwrap_or(f64::NAN);
    let conns = rows
        .iter()
        .find(|(t, _)| *t == Tool::Rbee)
        .and_then(|(_, s)| s.iter().filter_map(|x| x.connections).max())
        .map_or("?".to_owned(), |c| c.to_string());
    let ratio = rbee / fastest;
    let outcome = if ratio <= TARGET {
        "✅ met".to_owned()
    } else if ratio <= TARGET + NOISE {
        format!("✅ met within the {:.0} % noise allowance", NOISE * 100.0)
    } else {
        format!("❌ missed by {:.2}×", ratio - TARGET)
    };
    format!(
        "Target: verified {} in ≤ {TARGET}× the fastest peer (+{:.0} % noise) → {ratio:.2}× ({rbee:.2} s vs \
         {peer} {fastest:.2} s, {conns} connections at most) — {outcome}.",
        size(bytes),
        NOISE * 100.0
    )
}

/// curl asking each CDN for a 2 MiB and a 32 MiB range of the `sha` blob (median of 3): the
/// paced ones hold their rate from the first byte, plain `limit_rate` lets a request's first
/// second through.
fn check(hub: &FakeHub, nginx: &Nginx, sha: &str, small: u64) -> Result<String> {
    let mut cdns = vec![(format!("fake hub CDN, {} MiB/s per connection", RATE >> 20), hub.cdn_url().to_owned())];
    for (i, cap) in NGINX.iter().enumerate() {
        let version = if i == 0 { format!(" {}", nginx_version()) } else { String::new() };
        cdns.push((format!("nginx{version}, `limit_rate {cap}`"), nginx.url(i)));
    }
    let lens = [2u64 << 20, (32u64 << 20).min(small)];
    let mut t = Table::new(&["CDN", "2 MiB range", "32 MiB range", "runs (s)"]);
    for (name, base) in &cdns {
        let url = format!("{base}/blobs/{REPO}/{sha}");
        let mut cells = vec![name.clone()];
        let mut all = Vec::new();
        for len in lens {
            note(format!("paced: curl {} of {name}", size(len)));
            let runs = (0..3).map(|_| range_secs(&url, len)).collect::<Result<Vec<f64>>>()?;
            let s = median(&runs);
            cells.push(format!("{s:.3} s ({:.1} MiB/s)", len as f64 / f64::from(1 << 20) / s));
            all.push(runs.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", "));
        }
        cells.push(all.join(" / "));
        t.row(&cells);
    }
    Ok(format!(
        "{}`curl -sS -o /dev/null -r 0-(len-1) -w '%{{time_total}}' URL`, median of 3 (all runs: 2 MiB / 32 MiB).\n\n",
        t.done()
    ))
}

/// Seconds curl took for the first `len` bytes of `url`.
fn range_secs(url: &str, len: u64) -> Result<f64> {
    let out = curl(&["-o", "/dev/null", "-r", &format!("0-{}", len - 1), "-w", "%{time_total} %{size_download}", url])?;
    let (secs, got) = out.trim().split_once(' ').context("curl's -w output")?;
    if got.parse::<u64>().ok() != Some(len) {
        bail!("curl got {got} bytes of {url}, asked for {len}");
    }
    Ok(secs.parse()?)
}

fn curl(args: &[&str]) -> Result<String> {
    let mut curl = Command::new("curl");
    let out = output_ok(
        curl.args(["-sS", "--fail"]).args(args).env("NO_PROXY", "127.0.0.1,localhost"),
        &format!("curl {args:?}"),
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
