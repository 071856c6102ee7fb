//! Processes: the hive under test, timed children, `/proc` readings, a tiny blocking HTTP
//! client, and a SIGINT sender.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rbee_tests::harness::{self, process};

/// Where things are and how big to go: the options every section takes, read by clap.
#[derive(Debug, clap::Args)]
pub(crate) struct Ctx {
    /// Small sizes and few trials (a smoke run)
    #[arg(long, global = true)]
    pub(crate) quick: bool,
    /// Scratch directory (caches and downloaded files go here)
    #[arg(long, global = true, default_value = "/tmp")]
    pub(crate) tmp: PathBuf,
    /// Python venv with huggingface_hub (and maybe hf_transfer)
    #[arg(long, global = true, default_value = ".venv")]
    pub(crate) venv: PathBuf,
    /// Directory holding `rbee` and `rbee-hive`
    #[arg(long, global = true, default_value_os_t = beside_this_executable())]
    pub(crate) bin_dir: PathBuf,
}

/// The directory of the running `rbee-bench`, where cargo puts the release binaries too.
fn beside_this_executable() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().expect("exe dir").to_owned()
}

impl Ctx {
    /// A release binary (`rbee`, `rbee-hive`).
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// A fresh, empty scratch directory `name` under `--tmp`.
    pub(crate) fn fresh_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.tmp.join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// A venv executable, when it exists.
    pub(crate) fn venv_bin(&self, name: &str) -> Option<PathBuf> {
        let p = self.venv.join("bin").join(name);
        p.exists().then_some(p)
    }

    /// `n` in a full run, `quick` in a smoke run.
    pub(crate) fn pick<T>(&self, n: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            n
        }
    }
}

/// Progress on stderr.
pub(crate) fn note(msg: impl AsRef<str>) {
    eprintln!("rbee-bench: {}", msg.as_ref());
}

/// huggingface_hub's `hf_hub_download(repo, file)`, timed: prints `{import, call, size}`.
pub(crate) const HF_HUB_PY: &str = r#"
import json, os, sys, time
t0 = time.perf_counter()
from huggingface_hub import hf_hub_download
t1 = time.perf_counter()
p = hf_hub_download(sys.argv[1], sys.argv[2])
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "call": t2 - t1, "size": os.path.getsize(p)}))
"#;

/// hf_transfer the way huggingface_hub 0.x drove it (HF_HUB_ENABLE_HF_TRANSFER=1): resolve with a
/// HEAD that does not follow the redirect, then `download(cdn_url, file, max_files=argv[3])` with
/// 10 MiB chunks; prints `{import, call, size}`.
pub(crate) const HF_TRANSFER_PY: &str = r#"
import http.client, json, os, sys, time, urllib.parse
t0 = time.perf_counter()
import hf_transfer
t1 = time.perf_counter()
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
c.request("HEAD", u.path)
loc = urllib.parse.urljoin(sys.argv[1], c.getresponse().getheader("Location"))
hf_transfer.download(url=loc, filename=sys.argv[2], max_files=int(sys.argv[3]), chunk_size=10 * 1024 * 1024)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "call": t2 - t1, "size": os.path.getsize(sys.argv[2])}))
"#;

/// Milliseconds of a duration.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A running `rbee-hive`: the harness's (killed on drop), with the cache a benchmark chose.
pub(crate) struct Hive {
    inner: harness::Hive,
    pub(crate) addr: String,
    pub(crate) url: String,
}

impl Hive {
    /// Starts the hive (the one beside this executable) on a free port against `endpoint` with
    /// `cache`, and waits for `/health`.
    pub(crate) fn spawn(_ctx: &Ctx, endpoint: &str, cache: &Path, extra: &[&str]) -> Result<Self> {
        let cache = cache.to_str().context("the cache path is not UTF-8")?;
        let builder = extra.iter().fold(harness::Hive::builder().endpoint(endpoint), |b, a| b.arg(a));
        let inner = builder.arg("--cache-dir").arg(cache).spawn();
        let url = inner.url().to_owned();
        let addr = url.trim_start_matches("http://").to_owned();
        Ok(Self { inner, addr, url })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// user + system CPU seconds so far.
    pub(crate) fn cpu(&self) -> f64 {
        process::cpu_secs(self.pid()).unwrap_or(f64::NAN)
    }

    /// Peak resident set (VmHWM) in KiB.
    pub(crate) fn hwm_kib(&self) -> u64 {
        process::hwm_kib(self.pid())
    }

    /// Resets the peak resident set to the current one (`5` into `/proc/<pid>/clear_refs`), so
    /// that [`Hive::hwm_kib`] then reads the peak of what follows: one phase at a time.
    pub(crate) fn reset_peak(&self) -> Result<()> {
        let path = format!("/proc/{}/clear_refs", self.pid());
        std::fs::write(&path, "5").with_context(|| format!("writing 5 to {path}"))
    }

    /// Current resident set (VmRSS) in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        process::status_kib(self.pid(), "VmRSS").unwrap_or(0)
    }

    /// POST a `model_download` job; returns its id.
    pub(crate) fn submit(&self, repo: &str, file: &str) -> Result<String> {
        let op = serde_json::json!({"operation": "model_download", "hive_id": "localhost", "model": format!("{repo}:{file}")});
        let (status, body) = http(&self.addr, "POST", "/v1/jobs", Some(&op.to_string()))?;
        if status != 201 && status != 200 {
            bail!("POST /v1/jobs answered {status}: {body}");
        }
        let v: serde_json::Value = serde_json::from_str(&body)?;
        v["job_id"].as_str().map(str::to_owned).context("no job_id in the answer")
    }

    /// Every job with its status, from `GET /v1/jobs`.
    pub(crate) fn jobs(&self) -> Result<Vec<(String, String, u64)>> {
        let (_, body) = http(&self.addr, "GET", "/v1/jobs", None)?;
        let v: serde_json::Value = serde_json::from_str(&body).with_context(|| format!("GET /v1/jobs: {body}"))?;
        let jobs = v.as_array().context("GET /v1/jobs: not a list")?;
        Ok(jobs
            .iter()
            .map(|j| {
                let s = |k: &str| j[k].as_str().unwrap_or_default().to_owned();
                (s("job_id"), s("status"), j["events"].as_u64().unwrap_or(0))
            })
            .collect())
    }
}

/// Whether a job status (as `GET /v1/jobs` spells it) is final.
pub(crate) fn is_final(status: &str) -> bool {
    serde_json::from_value::<rbee_protocol::JobStatus>(serde_json::Value::from(status)).is_ok_and(|s| s.is_final())
}

/// What `/usr/bin/time` saw of one child that exited 0.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Wall seconds from spawn to exit, measured here.
    pub(crate) wall: f64,
    /// user + system CPU seconds.
    pub(crate) cpu: f64,
    /// Peak RSS in KiB.
    pub(crate) max_rss_kib: u64,
    /// What it printed on stdout.
    pub(crate) stdout: String,
}

/// Runs `cmd` (`what`, for the error) to its end; fails with what it printed unless it exited 0.
pub(crate) fn output_ok(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running `{}` ({what})", cmd.get_program().to_string_lossy()))?;
    if !out.status.success() {
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        bail!("{what} failed ({}): {stdout}{stderr}", out.status);
    }
    Ok(out)
}

/// Runs `cmd` (`what`, for the error) under `/usr/bin/time`, stdout and stderr captured; fails
/// unless it exited 0.
pub(crate) fn timed(cmd: &Command, scratch: &Path, what: &str) -> Result<Run> {
    let out_file = scratch.join("time.out");
    let mut t = Command::new("/usr/bin/time");
    t.args(["-f", "%U %S %M", "-o"]).arg(&out_file).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        t.current_dir(dir);
    }
    let start = Instant::now();
    let out = output_ok(t.stdin(Stdio::null()), what)?;
    let wall = start.elapsed().as_secs_f64();
    let text = fs::read_to_string(&out_file).unwrap_or_default();
    // The last line holds the figures (earlier ones may say "Command exited with non-zero status").
    let nums: Vec<f64> =
        text.lines().last().unwrap_or_default().split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let (cpu, max_rss_kib) = match nums[..] {
        [u, s, m] => (u + s, m as u64),
        _ => (f64::NAN, 0),
    };
    Ok(Run { wall, cpu, max_rss_kib, stdout: String::from_utf8_lossy(&out.stdout).into_owned() })
}

/// One blocking HTTP/1.1 request (the harness's client); returns status and body as text.
pub(crate) fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let url = format!("http://{addr}{path}");
    let res =
        rbee_tests::harness::http::request(method, &url, &[("Accept", "application/json")], body.map(str::as_bytes))
            .with_context(|| format!("{method} {url}"))?;
    Ok((res.status, res.text()))
}

/// Sends SIGINT through a resident `bash` (its `kill` builtin is a plain `kill(2)`, no fork), so
/// the signal leaves within microseconds of the request: this crate denies `unsafe`, so no libc.
pub(crate) struct Killer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Killer {
    pub(crate) fn new() -> Result<Self> {
        let mut child = Command::new("bash")
            .args(["-c", "while read -r p; do kill -INT \"$p\"; echo k; done"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting bash")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        Ok(Self { child, stdin, stdout })
    }

    /// SIGINT to `pid`; returns once it was sent.
    pub(crate) fn sigint(&mut self, pid: u32) -> Result<()> {
        writeln!(self.stdin, "{pid}")?;
        self.stdin.flush()?;
        let mut ack = String::new();
        self.stdout.read_line(&mut ack)?;
        if ack.trim() != "k" {
            bail!("the signal helper died");
        }
        Ok(())
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Size of a file (0 when missing).
pub(crate) fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Every file under `dir` whose name ends with `suffix`.
pub(crate) fn find_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return found };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            found.extend(find_files(&p, suffix));
        } else if p.to_string_lossy().ends_with(suffix) {
            found.push(p);
        }
    }
    found
}
