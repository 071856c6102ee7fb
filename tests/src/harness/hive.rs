//! [`Hive`]: a real `rbee-hive` process on a free loopback port with its own HF cache, pointed at
//! a [`FakeHub`]; ready (`/health` answered 200) when `spawn` returns, killed on `Drop`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::{bin, free_port, http, FakeHub, SseStream, TIMEOUT};

/// How to start a [`Hive`].
#[must_use]
#[derive(Debug, Clone)]
pub struct HiveBuilder {
    endpoint: String,
    hf_token: Option<String>,
    heartbeat_secs: Option<u64>,
    stall_secs: Option<u64>,
    retries: Option<u32>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cache: Option<Arc<TempDir>>,
    token: Option<String>,
}

impl Default for HiveBuilder {
    fn default() -> Self {
        Self {
            // A closed loopback port: without a hub, nothing leaves the machine.
            endpoint: "http://127.0.0.1:9".into(),
            hf_token: None,
            heartbeat_secs: None,
            stall_secs: None,
            retries: None,
            args: vec![],
            env: vec![],
            cache: None,
            token: None,
        }
    }
}

impl HiveBuilder {
    /// `HF_ENDPOINT` = the hub's endpoint.
    pub fn hub(mut self, hub: &FakeHub) -> Self {
        self.endpoint = hub.endpoint().to_owned();
        self
    }

    /// `HF_ENDPOINT` = anything.
    pub fn endpoint(mut self, url: &str) -> Self {
        self.endpoint = url.to_owned();
        self
    }

    /// `HF_TOKEN`.
    pub fn hf_token(mut self, token: &str) -> Self {
        self.hf_token = Some(token.to_owned());
        self
    }

    /// `--heartbeat-secs`.
    pub fn heartbeat_secs(mut self, secs: u64) -> Self {
        self.heartbeat_secs = Some(secs);
        self
    }

    /// `--stall-secs`.
    pub fn stall_secs(mut self, secs: u64) -> Self {
        self.stall_secs = Some(secs);
        self
    }

    /// `--retries`.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }

    /// `--token`: every request must carry it, the harness's own included.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Many jobs watched at once: each job one stream (`--max-parts 1`), up to `jobs` of them
    /// transferring together (`--max-downloads`; the default 8 would queue the rest), a heartbeat
    /// a second.
    pub fn many_streams(self, jobs: usize) -> Self {
        self.heartbeat_secs(1).arg("--max-parts").arg("1").arg("--max-downloads").arg(&jobs.to_string())
    }

    /// Any other argument.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Any other environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Use the cache directory of another hive (e.g. to test a restart).
    pub fn share_cache(mut self, other: &Hive) -> Self {
        self.cache = Some(other.cache.clone());
        self
    }

    /// Start it and wait for `/health`.
    ///
    /// # Panics
    /// When it does not come up within 10 s (the panic shows its log).
    pub fn spawn(self) -> Hive {
        let logs = TempDir::new().expect("temp dir for the hive log");
        let cache = self.cache.clone().unwrap_or_else(|| Arc::new(TempDir::new().expect("temp dir for the HF cache")));
        let mut hive = Hive {
            child: None,
            url: String::new(),
            cache,
            log_path: logs.path().join("hive.log"),
            _logs: logs,
            builder: self,
        };
        // A port picked here and released can be taken before the hive binds it (by another
        // test's listener, or another hive): then the hive exits at once, and gets another.
        for _ in 0..5 {
            if hive.start(free_port()) {
                return hive;
            }
        }
        panic!("rbee-hive: five ports in a row were taken; log:\n{}", hive.log());
    }
}

/// A running `rbee-hive`.
#[derive(Debug)]
pub struct Hive {
    child: Option<Child>,
    url: String,
    cache: Arc<TempDir>,
    log_path: PathBuf,
    _logs: TempDir,
    builder: HiveBuilder,
}

impl Hive {
    /// Options for a hive.
    pub fn builder() -> HiveBuilder {
        HiveBuilder::default()
    }

    /// A hive with default options downloading from `hub`.
    pub fn spawn(hub: &FakeHub) -> Self {
        Self::builder().hub(hub).spawn()
    }

    /// Spawns it on `port` and waits for `/health`; false when it could not bind the port.
    fn start(&mut self, port: u16) -> bool {
        let b = &self.builder;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(bin("rbee-hive"));
        cmd.args(["--addr", &addr]);
        let knobs = [
            ("--heartbeat-secs", b.heartbeat_secs),
            ("--stall-secs", b.stall_secs),
            ("--retries", b.retries.map(u64::from)),
        ];
        for (flag, value) in knobs {
            if let Some(v) = value {
                cmd.args([flag, &v.to_string()]);
            }
        }
        cmd.args(&b.args);
        if let Some(t) = &b.token {
            cmd.args(["--token", t]);
        }
        for var in ["HF_TOKEN", "HF_HOME", "RBEE_HIVE_TOKEN", "RBEE_HIVE_URL", "HF_HUB_OFFLINE"] {
            cmd.env_remove(var);
        }
        cmd.env("HF_ENDPOINT", &b.endpoint).env("HF_HUB_CACHE", self.cache.path()).env("RUST_BACKTRACE", "1");
        cmd.env("HF_HOME", self.cache.path().join(".hf-home"));
        if let Some(t) = &b.hf_token {
            cmd.env("HF_TOKEN", t);
        }
        cmd.envs(b.env.iter().map(|(k, v)| (k, v)));
        let log = File::options().create(true).append(true).open(&self.log_path).expect("hive log file");
        cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("log fd")).stderr(log);
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")));
        self.url = format!("http://{addr}");
        self.wait_healthy()
    }

    /// Waits until this hive (its pid: not another one on the same port) answers `/health`;
    /// false when it could not bind its port.
    fn wait_healthy(&mut self) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = self.log();
                if log.lines().last().is_some_and(|l| l.contains("Address already in use")) {
                    return false;
                }
                panic!("rbee-hive exited ({status}) before /health answered; log:\n{log}");
            }
            assert!(Instant::now() < deadline, "rbee-hive: no /health 200 within 10 s; log:\n{}", self.log());
            let bearer = self.bearer();
            let headers = self.headers(&bearer, &[]);
            if let Ok(r) = http::request("GET", &format!("{}/health", self.url), &headers, None) {
                let pid = r.json()["pid"].as_u64();
                if r.status == 200 && pid.is_none_or(|p| p == u64::from(self.pid())) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `Bearer <token>`, the `Authorization` value, when the hive has a token.
    pub fn bearer(&self) -> Option<String> {
        self.builder.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// The headers of the harness's own requests: `extra`, and the token when the hive has one.
    fn headers<'a>(&self, bearer: &'a Option<String>, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all = extra.to_vec();
        if let Some(b) = bearer {
            all.push(("Authorization", b.as_str()));
        }
        all
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its `HF_HUB_CACHE`.
    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    /// Path of `models--{org}--{name}` in the cache for `org/name`.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.cache_dir().join(format!("models--{}", repo.replace('/', "--")))
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Where its log is written.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL it and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `SIG{signal}` (`INT`, `TERM`, …) to the hive.
    ///
    /// # Panics
    /// When `kill` fails.
    #[track_caller]
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill").args([format!("-{signal}"), self.pid().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {} failed\nhive log:\n{}", self.pid(), self.log());
    }

    /// Send `signal` (`"INT"`, what Ctrl+C sends, or `"TERM"`) and wait up to `timeout` for it to
    /// exit; its exit status, or `None` while it still runs.
    #[track_caller]
    pub fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.signal(signal);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Kill it and start it again on the same port, cache and options.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in url");
        assert!(self.start(port), "rbee-hive: its port was taken while it restarted; log:\n{}", self.log());
    }

    #[track_caller]
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let bytes = body.map(Value::to_string);
        // JSON details of `/health` (rbee's plain `ok` is for clients that do not ask for JSON).
        let bearer = self.bearer();
        let headers = self.headers(&bearer, &[("Accept", "application/json")]);
        match http::request(method, &url, &headers, bytes.as_deref().map(str::as_bytes)) {
            Ok(r) => (r.status, r.json()),
            Err(e) => panic!("{method} {url}: {e}\nhive log:\n{}", self.log()),
        }
    }

    /// `GET path` → (status, JSON body or `Null`).
    #[track_caller]
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    /// `DELETE path` → (status, JSON body or `Null`).
    #[track_caller]
    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None)
    }

    /// `POST path` with a JSON body → (status, JSON body or `Null`).
    #[track_caller]
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }

    /// `POST /v1/jobs` → (status, JSON body).
    #[track_caller]
    pub fn post_job(&self, operation: &Value) -> (u16, Value) {
        self.post("/v1/jobs", operation)
    }

    /// Start a `model_download` of `repo:file` at `main`; returns the job id.
    #[track_caller]
    pub fn start_download(&self, repo: &str, file: &str) -> String {
        let op = serde_json::json!({
            "operation": "model_download", "hive_id": "localhost", "model": format!("{repo}:{file}"), "revision": "main"
        });
        let (status, body) = self.post_job(&op);
        assert_eq!(status, 200, "POST /v1/jobs {op}: {status} {body}\nhive log:\n{}", self.log());
        body["job_id"].as_str().unwrap_or_else(|| panic!("no job_id in {body}")).to_owned()
    }

    /// Subscribe to a job's events.
    pub fn sse(&self, job_id: &str) -> SseStream {
        SseStream::connect(self, job_id, None)
    }
}

impl Drop for Hive {
    fn drop(&mut self) {
        self.kill();
    }
}
