//! The hive's HF mirror (`GET /hf/{repo}/resolve/main/{file}`) serving a cached blob vs nginx
//! serving the same file (sendfile on), both read by curl into /dev/null over loopback: wall
//! throughput, server CPU, server peak RSS. Issue 27's target: the mirror at ≥ 0.9× nginx (it
//! sends a blob with `sendfile`, as nginx does), on a quiet machine and with one core kept busy
//! (`--busy`).
//!
//! nginx is Debian's `nginx-light` (bench/mirror.sh installs it); it runs as one process
//! (`master_process off`), so its CPU and RSS are one `/proc` entry, just like the hive's.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::proc::{note, timed, Ctx, Hive};
use crate::table::{median, size, Table};
use rbee_tests::harness::nginx::Nginx;
use rbee_tests::harness::process::{cpu_secs, status_kib};

const REPO_DIR: &str = "models--bench--mirror";
const ETAG: &str = "5e1f0b2a7c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TARGET: f64 = 0.9;

/// One download by curl: wall seconds, server CPU seconds, client CPU seconds.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: f64,
    server_cpu: f64,
    client_cpu: f64,
}

/// What to measure: blob size, runs per server, and whether a spinning shell keeps a core busy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) mib: Option<u64>,
    pub(crate) runs: Option<usize>,
    pub(crate) busy: bool,
}

/// A shell spinning on one core until dropped.
struct Busy(std::process::Child);

impl Busy {
    fn start() -> Result<Self> {
        note("mirror: a shell keeps one core busy");
        Ok(Self(Command::new("sh").args(["-c", "while :; do :; done"]).spawn().context("spawn sh")?))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "?".to_owned(), |l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
}

pub(crate) fn run(ctx: &Ctx, plan: Plan) -> Result<String> {
    let bytes = plan.mib.map_or_else(|| ctx.pick(2u64 << 30, 256 << 20), |m| m << 20);
    let runs = plan.runs.unwrap_or_else(|| ctx.pick(7, 2));
    let dir = ctx.fresh_dir("mirror")?;
    let cache = dir.join("cache");
    let blob = write_cache(&cache, bytes)?;
    let hive = Hive::spawn(ctx, "http://127.0.0.1:9", &cache, &[])?;
    let nginx = Nginx::start(&dir.join("nginx"), blob.parent().context("blob dir")?, &[None])?;
    let urls = [
        ("rbee-hive mirror", format!("{}/hf/bench/mirror/resolve/main/model.gguf", hive.url), hive.pid()),
        ("nginx (sendfile)", format!("{}/{ETAG}", nginx.url(0)), nginx.pid()),
    ];
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); urls.len()];
    let busy = plan.busy.then(Busy::start).transpose()?;
    let load_before = loadavg();
    for r in 0..runs {
        // Alternate who goes first: the machine's background load drifts.
        let order: Vec<usize> = if r % 2 == 0 { vec![0, 1] } else { vec![1, 0] };
        for i in order {
            let (name, url, pid) = &urls[i];
            note(format!("mirror: run {}/{runs}: {name} ({})", r + 1, size(bytes)));
            samples[i].push(fetch(url, *pid, bytes, &dir)?);
        }
    }
    let load = format!("load average {load_before} before / {} after", loadavg());
    drop(busy);
    let rss = [hive.hwm_kib(), status_kib(nginx.pid(), "VmHWM").unwrap_or(0)];
    let setting = if plan.busy { "one core kept busy by a spinning shell (`--busy`)" } else { "no extra load" };
    Ok(report(&urls.map(|(n, _, _)| n), &samples, rss, bytes, runs) + &format!("\n{setting}; {load}.\n"))
}

/// `cache/models--bench--mirror/{blobs/<etag>, snapshots/<commit>/model.gguf, refs/main}` with
/// `bytes` of patterned data; returns the blob's path.
fn write_cache(cache: &Path, bytes: u64) -> Result<std::path::PathBuf> {
    let repo = cache.join(REPO_DIR);
    let blob = repo.join("blobs").join(ETAG);
    fs::create_dir_all(blob.parent().context("blobs")?)?;
    fs::create_dir_all(repo.join("snapshots").join(COMMIT))?;
    fs::create_dir_all(repo.join("refs"))?;
    fs::write(repo.join("refs/main"), COMMIT)?;
    std::os::unix::fs::symlink(format!("../../blobs/{ETAG}"), repo.join("snapshots").join(COMMIT).join("model.gguf"))?;
    note(format!("mirror: writing a {} blob", size(bytes)));
    let mut out = std::io::BufWriter::with_capacity(1 << 20, fs::File::create(&blob)?);
    let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(blob)
}

/// curl `url` into /dev/null; checks the byte count.
fn fetch(url: &str, server: u32, bytes: u64, scratch: &Path) -> Result<Sample> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url]);
    let cpu0 = cpu_secs(server).unwrap_or(f64::NAN);
    let run = timed(&cmd, scratch, "curl")?;
    let server_cpu = cpu_secs(server).unwrap_or(f64::NAN) - cpu0;
    if run.stdout.trim() != bytes.to_string() {
        bail!("curl {url} got {} bytes, expected {bytes}", run.stdout.trim());
    }
    Ok(Sample { wall: run.wall, server_cpu, client_cpu: run.cpu })
}

fn report(names: &[&str], samples: &[Vec<Sample>], rss: [u64; 2], bytes: u64, runs: usize) -> String {
    let mib_s =
        |s: &[Sample]| median(&s.iter().map(|x| bytes as f64 / x.wall / f64::from(1 << 20)).collect::<Vec<_>>());
    let rates: Vec<f64> = samples.iter().map(|s| mib_s(s)).collect();
    let mut t = Table::new(&[
        "server",
        "median MiB/s",
        "vs nginx",
        "server CPU / GiB",
        "client CPU / GiB",
        "server peak RSS",
        "runs (MiB/s)",
    ]);
    let gib = bytes as f64 / f64::from(1 << 30);
    for (i, name) in names.iter().enumerate() {
        let s = &samples[i];
        let each: Vec<String> =
            s.iter().map(|x| format!("{:.0}", bytes as f64 / x.wall / f64::from(1 << 20))).collect();
        t.row(&[
            (*name).to_owned(),
            format!("{:.0}", rates[i]),
            format!("{:.2}×", rates[i] / rates[1]),
            format!("{:.2} s", median(&s.iter().map(|x| x.server_cpu).collect::<Vec<_>>()) / gib),
            format!("{:.2} s", median(&s.iter().map(|x| x.client_cpu).collect::<Vec<_>>()) / gib),
            format!("{:.1} MiB", rss[i] as f64 / 1024.0),
            each.join(", "),
        ]);
    }
    let ratio = rates[0] / rates[1];
    let verdict = if ratio >= TARGET {
        format!("✅ met: {ratio:.2}× ≥ {TARGET}×")
    } else {
        format!("❌ missed: {ratio:.2}× < {TARGET}×")
    };
    format!(
        "## 9. HF mirror vs nginx\n\n\
         One {} blob in a tmpfs cache, fetched {runs}× by `curl -o /dev/null` over loopback from the hive's \
         `/hf/…/resolve/main/…` and from nginx-light (`sendfile on`, one process) serving the same file; \
         runs alternate. Target (issue 27): mirror ≥ {TARGET}× nginx — {verdict}.\n\n{}",
        size(bytes),
        t.done()
    )
}
