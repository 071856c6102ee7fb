//! [`Keeper`]: run the `rbee` binary the way casey/just's tests run `just` — a `#[must_use]`
//! builder, then either `.run()` (wait for the [`Output`]) or `.spawn()` (a [`Running`] child whose
//! stdout/stderr lines can be awaited, Ctrl+C'd and waited on). Failures dump everything.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::capture::Capture;
use super::{bin, Hive};

/// How long `wait` / `run` let the keeper run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A keeper invocation being built.
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct Keeper {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    hive: Option<(String, PathBuf)>,
}

impl Keeper {
    /// `rbee` with no arguments yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Append one argument.
    pub fn arg(self, arg: impl Into<OsString>) -> Self {
        self.args([arg])
    }

    /// Set an environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Talk to this hive (`--hive URL` before the other arguments); its log joins failure dumps.
    pub fn hive(mut self, hive: &Hive) -> Self {
        self.hive = Some((hive.url().to_owned(), hive.log_path().to_owned()));
        self
    }

    /// Where the hive it talks to logs, for failure dumps.
    pub fn hive_log(&self) -> Option<&std::path::Path> {
        self.hive.as_ref().map(|(_, log)| log.as_path())
    }

    /// The `rbee` command this builder describes (stdio piped; a pty replaces that).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin("rbee"));
        if let Some((url, _)) = &self.hive {
            cmd.args(["--hive", url]);
        }
        cmd.args(&self.args);
        for var in ["RBEE_HIVE_URL", "RBEE_HIVE_ADDR", "RBEE_HIVE_TOKEN", "HF_TOKEN", "HF_ENDPOINT"] {
            cmd.env_remove(var);
        }
        cmd.env("NO_COLOR", "1").env("RUST_BACKTRACE", "1");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Start it; output is captured line by line.
    pub fn spawn(self) -> Running {
        let mut cmd = self.command();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = Capture::start(child.stdout.take().expect("piped stdout"));
        let stderr = Capture::start(child.stderr.take().expect("piped stderr"));
        let context = Context { command: format!("{cmd:?}"), hive_log: self.hive.map(|(_, log)| log) };
        Running { child: Some(child), stdout, stderr, context }
    }

    /// Run it to completion (60 s max).
    pub fn run(self) -> Output {
        self.spawn().wait()
    }
}

/// What a failure dump shows besides the output.
#[derive(Debug, Clone)]
struct Context {
    command: String,
    hive_log: Option<PathBuf>,
}

impl Context {
    fn dump(&self, code: Option<i32>, stdout: &str, stderr: &str) -> String {
        let log = self.hive_log.as_ref().map(|p| std::fs::read_to_string(p).unwrap_or_default());
        format!(
            "command: {}\nexit code: {code:?}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}--- hive log ---\n{}",
            self.command,
            log.as_deref().unwrap_or("(no hive)\n"),
        )
    }
}

/// A running keeper.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    stdout: Arc<Capture>,
    stderr: Arc<Capture>,
    context: Context,
}

impl Running {
    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Wait for a stderr line matching `pred`; panics (with a dump) on timeout or exit.
    #[track_caller]
    pub fn wait_for_stderr(&self, timeout: Duration, pred: impl FnMut(&str) -> bool) -> String {
        let found = self.stderr.wait_for_line(timeout, pred);
        found.unwrap_or_else(|| panic!("no matching stderr line within {timeout:?}\n{}", self.dump()))
    }

    /// Output so far.
    pub fn stdout(&self) -> String {
        self.stdout.lines_text()
    }

    /// Error output so far.
    pub fn stderr(&self) -> String {
        self.stderr.lines_text()
    }

    /// Everything known so far, for a failure message.
    pub fn dump(&self) -> String {
        self.context.dump(None, &self.stdout(), &self.stderr())
    }

    /// Send SIGINT (what Ctrl+C sends) via `kill -INT`.
    #[track_caller]
    pub fn send_sigint(&self) {
        let status = Command::new("kill").args(["-INT", &self.pid().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -INT {} failed\n{}", self.pid(), self.dump());
    }

    /// Wait for it to exit (60 s max, then kill it and panic).
    #[track_caller]
    pub fn wait(self) -> Output {
        self.wait_timeout(RUN_TIMEOUT)
    }

    /// Wait for it to exit within `timeout`, else kill it and panic with a dump.
    #[track_caller]
    pub fn wait_timeout(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("keeper still running after {timeout:?}; killed\n{}", self.dump());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.stdout.wait_eof(Duration::from_secs(5));
        self.stderr.wait_eof(Duration::from_secs(5));
        let (stdout, stderr) = (self.stdout(), self.stderr());
        Output { code: status.code(), stdout, stderr, context: self.context.clone() }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How a keeper run ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
    context: Context,
}

impl Output {
    /// Command, exit code, stdout, stderr and hive log, for failure messages.
    pub fn dump(&self) -> String {
        self.context.dump(self.code, &self.stdout, &self.stderr)
    }

    /// Assert the exit code.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{}", self.dump());
        self
    }

    /// Assert exit code 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// Assert stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}\n{}", self.dump());
        self
    }

    /// Assert stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}\n{}", self.dump());
        self
    }

    /// Assert `needle` appears on neither stream (e.g. a token).
    #[track_caller]
    pub fn assert_nowhere(&self, needle: &str) -> &Self {
        let found = self.stdout.contains(needle) || self.stderr.contains(needle);
        assert!(!found, "output contains {needle:?}\n{}", self.dump());
        self
    }
}
