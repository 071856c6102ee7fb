//! `strace -f -y` attached to a running process, for tests that pin which syscalls it makes (the
//! fsync order of a publish, the mirror's `sendfile`). `-y` prints each descriptor's path, so a
//! test finds the calls on one file by its name.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::capture::Capture;
use super::{peer, TIMEOUT};

/// A tracer attached to a process; [`Strace::finish`] detaches it and returns the trace.
pub struct Strace {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Strace {
    /// Attaches to `pid`, tracing `syscalls`, and returns once it has attached; `None` after a
    /// loud skip line (see [`peer::require`]) when strace is not installed.
    ///
    /// # Panics
    /// When strace cannot attach (ptrace refused).
    #[track_caller]
    pub fn attach(pid: u32, syscalls: &[&str], what: &str) -> Option<Self> {
        let strace = peer::require("strace", &["strace"], what)?;
        let dir = tempfile::tempdir().expect("trace dir");
        let out = dir.path().join("trace");
        let mut child = Command::new(strace)
            .args(["-f", "-y", "-e", &format!("trace={}", syscalls.join(",")), "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strace");
        let stderr = Capture::start(child.stderr.take().expect("strace stderr"));
        // `strace: Process N attached`, one line per thread of the process.
        let line = stderr.wait_for_line(TIMEOUT, |_| true).expect("strace did not attach (is ptrace allowed here?)");
        assert!(line.contains("attached"), "strace: {line}");
        std::thread::sleep(Duration::from_millis(300));
        Some(Self { child, out, _dir: dir })
    }

    /// Detaches and returns the trace, one syscall a line.
    pub fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.out).expect("read the trace")
    }
}
