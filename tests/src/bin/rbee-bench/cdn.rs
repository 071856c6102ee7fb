//! A real CDN: nginx serving the blobs, once with `limit_rate` per connection (the way a CDN caps
//! what one connection gets) and once unthrottled; the fake hub resolves and redirects there.
//! rbee (in parts) against aria2c, hf_transfer, huggingface_hub and curl, and a one-core row.
//! [`super::paced`] adds a CDN that paces every request from its first byte.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};

use crate::proc::{file_len, note, output_ok, timed, Ctx, Hive, HF_HUB_PY, HF_TRANSFER_PY};
use crate::table::{above, below, median, size, Table};
use crate::tools::{Cdn, Sample, Tool};
use rbee_tests::harness::nginx::Nginx;

pub(crate) const REPO: &str = "bench/cdn";
/// nginx `limit_rate` of the capped server.
const CAP: &str = "16m";
const CAP_MIB: u64 = 16;
const PARALLEL_TARGET: f64 = 1.1;
const UNTHROTTLED_TARGET: f64 = 0.8;
const RSS_TARGET_MIB: f64 = 32.0;

/// The tools' runs against hubs that redirect to the CDNs.
pub(crate) struct Bench<'a> {
    ctx: &'a Ctx,
    hubs: Vec<(Cdn, FakeHub)>,
    scripts: (PathBuf, PathBuf),
}

pub(crate) fn spec(small: u64, big: u64) -> RepoSpec {
    RepoSpec::new(REPO).lfs("small.bin", small).lfs("big.bin", big)
}

pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    let (small, big) = (ctx.pick(256u64 << 20, 64 << 20), ctx.pick(2u64 << 30, 256 << 20));
    let www = ctx.fresh_dir("cdn-www")?;
    // The blobs nginx serves: written once from the fake hub's own CDN, named as the hub names them.
    let seed = FakeHub::start(HubConfig::default());
    seed.add_repo(spec(small, big));
    for file in ["small.bin", "big.bin"] {
        let sha = seed.sha256(REPO, file);
        let path = www.join("blobs").join(REPO).join(&sha);
        fs::create_dir_all(path.parent().expect("dir"))?;
        note(format!(
            "cdn: writing {file} ({}) for nginx",
            size(seed.file_info(REPO, "main", file).expect("file").size)
        ));
        let url = format!("{}/{REPO}/resolve/main/{file}", seed.endpoint());
        output_ok(
            Command::new("curl").args(["-sS", "--fail", "-L", "-o"]).arg(&path).arg(&url),
            &format!("curl {url}"),
        )?;
    }
    drop(seed);
    let nginx = Nginx::start(&ctx.fresh_dir("nginx")?, &www, &[Some(CAP), None])?;
    let hub = |cdn: String| {
        let hub = FakeHub::start(HubConfig { cdn: Some(cdn), ..HubConfig::default() });
        hub.add_repo(spec(small, big));
        hub.sha256(REPO, "small.bin");
        hub.sha256(REPO, "big.bin");
        hub
    };
    let b = Bench::new(ctx, vec![(Cdn::Capped, hub(nginx.url(0))), (Cdn::Free, hub(nginx.url(1)))])?;
    let runs = ctx.pick(3, 1);
    let mut md = String::new();
    let capped_small = b.rows(
        Cdn::Capped,
        "small.bin",
        small,
        runs,
        &[Tool::Rbee, Tool::Aria2, Tool::HfTransfer, Tool::HfHub, Tool::Curl],
    )?;
    let capped_big = b.rows(Cdn::Capped, "big.bin", big, 1, &[Tool::Rbee, Tool::Aria2, Tool::HfTransfer])?;
    // Unthrottled runs share 2 cores with nginx, so a neighbour's burst moves one run by ±20 %: five
    // rounds, each tool once per round, and the median.
    let free_big = b.rows(
        Cdn::Free,
        "big.bin",
        big,
        ctx.pick(5, 1),
        &[Tool::Rbee, Tool::RbeeOneStream, Tool::Curl, Tool::Aria2, Tool::HfTransfer],
    )?;
    let one_core = b.rows(Cdn::Free, "big.bin", big, ctx.pick(2, 1), &[Tool::RbeeOneCore, Tool::CurlOpensslOneCore])?;
    let _ = write!(
        md,
        "## 8. A real CDN: nginx, {CAP_MIB} MiB/s per connection\n\n\
         nginx {} (Debian `nginx-light`, one process, `sendfile on`) serves the blobs from the bench scratch \
         directory; one server has `limit_rate {CAP}` (each connection gets at most {CAP_MIB} MiB/s, the way a \
         CDN caps a connection), another is unthrottled. The fake hub answers the resolve HEAD/GET and \
         redirects to nginx. Each run downloads into a fresh, empty directory; rbee: a fresh `rbee-hive` \
         (default `--max-parts 16`) per run, wall = `rbee --hive URL model download` from spawn to exit, i.e. \
         to a size- and sha256-verified, published blob; CPU = hive + keeper; RSS = the hive's VmHWM. Others: \
         wall from spawn to exit, CPU and peak RSS from `/usr/bin/time`. Only rbee verifies what it \
         downloaded. Python rows include interpreter start and import.\n\n\
         How nginx caps: `limit_rate` allows a request `rate × (seconds since it started + 1)` bytes \
         (`ngx_http_write_filter`), so the first second's {CAP_MIB} MiB of every request go out at once and \
         only what follows is paced. Tools that ask for ranges of at most {CAP_MIB} MiB per request (rbee's \
         2–8 MiB parts, hf_transfer's 10 MiB chunks) therefore get more than {CAP_MIB} MiB/s per connection \
         here; aria2c's 16 splits of the file are paced after their first {CAP_MIB} MiB: these rows can be \
         bypassed. Section 8b runs the same tools on CDNs that pace every request from its first byte.\n\n",
        nginx_version()
    );
    let _ = write!(md, "### Capped, {}\n\n{}", size(small), table(&capped_small, small));
    let fastest_peer =
        [Tool::Aria2, Tool::HfTransfer].iter().filter_map(|t| wall_of(&capped_small, *t)).fold(f64::INFINITY, f64::min);
    let rbee = wall_of(&capped_small, Tool::Rbee).unwrap_or(f64::NAN);
    let ratio = rbee / fastest_peer;
    let conns = capped_small
        .iter()
        .find(|(t, _)| *t == Tool::Rbee)
        .and_then(|(_, s)| s.iter().filter_map(|x| x.connections).max());
    let _ = write!(
        md,
        "Target: verified {} in ≤ {PARALLEL_TARGET}× the faster of aria2c and hf_transfer, with ≤ 16 connections → \
         {ratio:.2}× ({rbee:.2} s vs {fastest_peer:.2} s, {} connections at most) — {}.\n\n",
        size(small),
        conns.map_or("?".to_owned(), |c| c.to_string()),
        if ratio <= PARALLEL_TARGET && conns.unwrap_or(0) <= 16 {
            "✅ met".to_owned()
        } else {
            format!("❌ missed by {:.2}×", ratio - PARALLEL_TARGET)
        },
    );
    let single = f64::from(u32::try_from(big >> 20).unwrap_or(u32::MAX)) / CAP_MIB as f64;
    let _ = write!(
        md,
        "### Capped, {}\n\n{}One connection (huggingface_hub, curl) needs {} / {CAP_MIB} MiB/s = {single:.0} s here; \
         not run.\n\n",
        size(big),
        table(&capped_big, big),
        size(big)
    );
    let _ = write!(md, "### Unthrottled, {}\n\n{}", size(big), table(&free_big, big));
    let curl = wall_of(&free_big, Tool::Curl).unwrap_or(f64::NAN);
    let rbee_free = wall_of(&free_big, Tool::Rbee).unwrap_or(f64::NAN);
    let r = curl / rbee_free;
    let _ = write!(
        md,
        "Target: rbee (verified) ≥ {UNTHROTTLED_TARGET}× `curl -o`'s throughput (which does not hash) → {r:.2}× — {}.\n\n",
        above(r, UNTHROTTLED_TARGET, "× curl")
    );
    let rss = [&capped_big, &free_big]
        .iter()
        .filter_map(|rows| rows.iter().find(|(t, _)| *t == Tool::Rbee))
        .flat_map(|(_, s)| s.iter().map(|x| x.rss_kib))
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    let _ = write!(
        md,
        "Target: hive peak RSS < {RSS_TARGET_MIB} MiB during a {} download in parts → {rss:.1} MiB (largest VmHWM \
         of the capped and unthrottled {} runs) — {}.\n\n",
        size(big),
        size(big),
        below(rss, RSS_TARGET_MIB, "MiB")
    );
    let _ = write!(
        md,
        "### One core, unthrottled, {}\n\nThe hive (all its threads, `taskset -a -p`) and the keeper pinned to \
         CPU 0, against a shell pipeline pinned the same way that downloads, writes and hashes the same bytes \
         (`curl | tee file | openssl dgst -sha256`); nginx runs unpinned.\n\n{}",
        size(big),
        table(&one_core, big)
    );
    Ok(md)
}

pub(crate) fn nginx_version() -> String {
    Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().trim_start_matches("nginx version: nginx/").to_owned())
        .unwrap_or_default()
}

pub(crate) fn wall_of(rows: &[(Tool, Vec<Sample>)], tool: Tool) -> Option<f64> {
    let (_, s) = rows.iter().find(|(t, _)| *t == tool)?;
    Some(median(&s.iter().map(|x| x.wall).collect::<Vec<_>>()))
}

pub(crate) fn table(rows: &[(Tool, Vec<Sample>)], bytes: u64) -> String {
    let mut t = Table::new(&[
        "tool",
        "median wall",
        "MiB/s",
        "median CPU (user+sys)",
        "peak RSS",
        "connections",
        "runs (wall s)",
    ]);
    for (tool, s) in rows {
        let med = |f: fn(&Sample) -> f64| median(&s.iter().map(f).collect::<Vec<_>>());
        let wall = med(|x| x.wall);
        t.row(&[
            tool.name().to_owned(),
            format!("{wall:.2} s"),
            format!("{:.0}", bytes as f64 / f64::from(1 << 20) / wall),
            format!("{:.2} s", med(|x| x.cpu)),
            format!("{:.1} MiB", med(|x| x.rss_kib as f64) / 1024.0),
            s.iter().filter_map(|x| x.connections).max().map_or("—".to_owned(), |c| format!("≤ {c}")),
            s.iter().map(|x| format!("{:.2}", x.wall)).collect::<Vec<_>>().join(", "),
        ]);
    }
    t.done()
}

impl<'a> Bench<'a> {
    /// Runs against `hubs`, each redirecting to its CDN.
    pub(crate) fn new(ctx: &'a Ctx, hubs: Vec<(Cdn, FakeHub)>) -> Result<Self> {
        let (hft, hfh) = (ctx.tmp.join("cdn_hf_transfer.py"), ctx.tmp.join("cdn_hf_hub.py"));
        fs::write(&hft, HF_TRANSFER_PY)?;
        fs::write(&hfh, HF_HUB_PY)?;
        Ok(Self { ctx, hubs, scripts: (hft, hfh) })
    }

    fn hub(&self, cdn: Cdn) -> &FakeHub {
        &self.hubs.iter().find(|(c, _)| *c == cdn).expect("a hub for every CDN the bench uses").1
    }

    /// `runs` rounds over `tools`, each tool once per round (so a neighbour's burst spreads over
    /// all of them).
    pub(crate) fn rows(
        &self,
        cdn: Cdn,
        file: &str,
        bytes: u64,
        runs: usize,
        tools: &[Tool],
    ) -> Result<Vec<(Tool, Vec<Sample>)>> {
        let tools: Vec<Tool> = tools.iter().copied().filter(|t| self.available(*t)).collect();
        let mut out: Vec<(Tool, Vec<Sample>)> = tools.iter().map(|t| (*t, Vec::new())).collect();
        for r in 0..runs {
            // Each round starts with the next tool: none always runs first (or after another).
            let len = out.len();
            for k in 0..len {
                let (tool, list) = &mut out[(k + r) % len];
                let how = cdn.name();
                note(format!("cdn: {how} {} run {}/{runs}: {}", size(bytes), r + 1, tool.name()));
                let s = self.measure(*tool, cdn, file, bytes).with_context(|| format!("{} ({how})", tool.name()))?;
                list.push(s);
            }
        }
        Ok(out)
    }

    fn available(&self, tool: Tool) -> bool {
        let module = match tool {
            Tool::HfTransfer => "hf_transfer",
            Tool::HfHub => "huggingface_hub",
            _ => return true,
        };
        let ok = self.ctx.venv_bin("python").is_some_and(|py| {
            Command::new(py).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success())
        });
        if !ok {
            note(format!("cdn: skipping {} ({module} is not importable from the venv)", tool.name()));
        }
        ok
    }

    fn measure(&self, tool: Tool, cdn: Cdn, file: &str, bytes: u64) -> Result<Sample> {
        let hub = self.hub(cdn);
        let dir = self.ctx.fresh_dir("cdn-dl")?;
        let url = format!("{}/{REPO}/resolve/main/{file}", hub.endpoint());
        let out = dir.join(file);
        let sample = match tool {
            Tool::Rbee | Tool::RbeeOneCore | Tool::RbeeOneStream => self.rbee(hub, file, bytes, &dir, tool)?,
            _ => {
                let mut cmd = match tool {
                    Tool::Aria2 => {
                        let mut c = Command::new("aria2c");
                        c.args(["-x16", "-s16", "-q", "--allow-overwrite=true", "-d"])
                            .arg(&dir)
                            .args(["-o", file, &url]);
                        c
                    }
                    Tool::Curl => {
                        let mut c = Command::new("curl");
                        c.args(["-sS", "--fail", "-L", "-o"]).arg(&out).arg(&url);
                        c
                    }
                    Tool::CurlOpensslOneCore => {
                        let mut c = Command::new("taskset");
                        c.args(["-c", "0", "bash", "-o", "pipefail", "-c"])
                            .arg(r#"curl -sS --fail -L "$1" | tee "$2" | openssl dgst -sha256 >/dev/null"#)
                            .args(["bash", &url])
                            .arg(&out);
                        c
                    }
                    Tool::HfTransfer | Tool::HfHub => {
                        let mut c = Command::new(self.ctx.venv_bin("python").context("no venv python")?);
                        if tool == Tool::HfTransfer {
                            c.arg(&self.scripts.0).arg(&url).arg(&out).arg("16");
                        } else {
                            c.arg(&self.scripts.1).args([REPO, file]);
                        }
                        c.env("HF_ENDPOINT", hub.endpoint())
                            .env("HF_HUB_CACHE", dir.join("cache"))
                            .env("HF_HUB_DISABLE_TELEMETRY", "1")
                            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                            .env_remove("HF_TOKEN");
                        c
                    }
                    Tool::Rbee | Tool::RbeeOneCore | Tool::RbeeOneStream => unreachable!("handled above"),
                };
                cmd.env("NO_PROXY", "127.0.0.1,localhost");
                let run = timed(&cmd, &dir, tool.name())?;
                if tool != Tool::HfHub && file_len(&out) != bytes {
                    bail!("{} wrote {} bytes, expected {bytes}", tool.name(), file_len(&out));
                }
                Sample { wall: run.wall, cpu: run.cpu, rss_kib: run.max_rss_kib, connections: None }
            }
        };
        let _ = fs::remove_dir_all(&dir);
        Ok(sample)
    }

    fn rbee(&self, hub: &FakeHub, file: &str, bytes: u64, dir: &Path, tool: Tool) -> Result<Sample> {
        let cache = dir.join("cache");
        let extra: &[&str] = if tool == Tool::RbeeOneStream { &["--max-parts", "1"] } else { &[] };
        let hive = Hive::spawn(self.ctx, hub.endpoint(), &cache, extra)?;
        let mut cmd = if tool == Tool::RbeeOneCore {
            output_ok(Command::new("taskset").args(["-a", "-p", "-c", "0", &hive.pid().to_string()]), "taskset -a -p")?;
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(self.ctx.bin("rbee"));
            c
        } else {
            Command::new(self.ctx.bin("rbee"))
        };
        cmd.args(["--json", "--hive", &hive.url, "model", "download", REPO, file]);
        let cpu0 = hive.cpu();
        let run = timed(&cmd, dir, "rbee model download")?;
        let cpu = hive.cpu() - cpu0 + run.cpu;
        let blob = cache.join("models--bench--cdn/blobs").join(hub.sha256(REPO, file));
        if file_len(&blob) != bytes {
            bail!("{} has {} bytes, expected {bytes}", blob.display(), file_len(&blob));
        }
        // "🔀 … in parts: one connection first", then "widened to N connections": the most it said.
        let connections = run.stdout.contains("in parts:").then(|| {
            run.stdout
                .split(" connections")
                .filter_map(|s| s.rsplit_once("widened to ").and_then(|(_, n)| n.parse::<usize>().ok()))
                .fold(1, usize::max)
        });
        Ok(Sample { wall: run.wall, cpu, rss_kib: hive.hwm_kib(), connections })
    }
}
