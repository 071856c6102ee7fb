//! Processes: the hive under test, timed children, `/proc` readings, a tiny blocking HTTP
//! client, and a SIGINT sender.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Where things are and how big to go.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) bin_dir: PathBuf,
    pub(crate) tmp: PathBuf,
    pub(crate) venv: PathBuf,
    pub(crate) quick: bool,
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

/// Milliseconds of a duration.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A free port on 127.0.0.1 (bind :0, read, release).
pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `rbee-hive` (killed on drop).
pub(crate) struct Hive {
    child: Child,
    pub(crate) addr: String,
    pub(crate) url: String,
}

impl Hive {
    /// Starts the hive on a free port against `endpoint` with `cache`, and waits for `/health`.
    pub(crate) fn spawn(ctx: &Ctx, endpoint: &str, cache: &Path, extra: &[&str]) -> Result<Self> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        let log = fs::File::create(cache.with_extension("hive.log"))?;
        let child = Command::new(ctx.bin("rbee-hive"))
            .args(["--addr", &addr, "--cache-dir"])
            .arg(cache)
            .args(extra)
            .env("HF_ENDPOINT", endpoint)
            .env_remove("HF_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} (run `just bench`)", ctx.bin("rbee-hive").display()))?;
        let hive = Self { child, url: format!("http://{addr}"), addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while http(&hive.addr, "GET", "/health", None).map(|(s, _)| s).ok() != Some(200) {
            if Instant::now() > deadline {
                bail!("the hive on {} never answered /health", hive.addr);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(hive)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// user + system CPU seconds so far.
    pub(crate) fn cpu(&self) -> f64 {
        cpu_secs(self.pid()).unwrap_or(f64::NAN)
    }

    /// Peak resident set (VmHWM) in KiB.
    pub(crate) fn hwm_kib(&self) -> u64 {
        status_kib(self.pid(), "VmHWM").unwrap_or(0)
    }

    /// Current resident set (VmRSS) in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmRSS").unwrap_or(0)
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

impl Drop for Hive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a job status is final.
pub(crate) fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

fn stat_fields(path: &str) -> Option<Vec<u64>> {
    let text = fs::read_to_string(path).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    Some(after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect())
}

/// Clock ticks per second of `/proc/*/stat` (100 on every Linux this runs on).
const TICKS: f64 = 100.0;

/// utime + stime of `pid` in seconds.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let f = stat_fields(&format!("/proc/{pid}/stat"))?;
    Some((f[11] + f[12]) as f64 / TICKS)
}

/// A `kB` line of `/proc/<pid>/status`.
pub(crate) fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// What `/usr/bin/time` saw of one child.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// Wall seconds from spawn to exit, measured here.
    pub(crate) wall: f64,
    /// user + system CPU seconds.
    pub(crate) cpu: f64,
    /// Peak RSS in KiB.
    pub(crate) max_rss_kib: u64,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// Fails with the child's output unless it exited 0.
    pub(crate) fn ok(self, what: &str) -> Result<Self> {
        if self.status.success() {
            Ok(self)
        } else {
            bail!("{what} failed ({}): {}{}", self.status, self.stdout, self.stderr)
        }
    }
}

/// Runs `cmd` under `/usr/bin/time` (stdout and stderr captured).
pub(crate) fn timed(cmd: &Command, scratch: &Path) -> Result<Run> {
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
    let out = t.stdin(Stdio::null()).output().context("running /usr/bin/time (install `time`)")?;
    let wall = start.elapsed().as_secs_f64();
    let text = fs::read_to_string(&out_file).unwrap_or_default();
    // The last line holds the figures (earlier ones may say "Command exited with non-zero status").
    let nums: Vec<f64> =
        text.lines().last().unwrap_or_default().split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let (cpu, max_rss_kib) = match nums[..] {
        [u, s, m] => (u + s, m as u64),
        _ => (f64::NAN, 0),
    };
    Ok(Run {
        wall,
        cpu,
        max_rss_kib,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// One blocking HTTP/1.1 request with `Connection: close`; returns status and body.
pub(crate) fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").context("no response head")?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).context("bad status line")?;
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Ok((status, if chunked { dechunk(rest) } else { rest.to_owned() }))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// Sends SIGINT through a resident `bash` (its `kill` builtin is a plain `kill(2)`, no fork), so
/// the signal leaves within microseconds of the request: this crate forbids `unsafe`, so no libc.
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
