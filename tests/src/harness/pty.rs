//! [`Pty`]: run the keeper on a pseudo-terminal, the way a person runs it. Its stdout and stderr
//! are a TTY (so it draws progress bars), and [`Pty::ctrl_c`] types a real Ctrl+C: the byte 0x03
//! goes to the terminal, whose line discipline sends SIGINT to the whole foreground process group.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

use super::capture::Capture;
use super::Keeper;

/// How long [`Pty::wait`] lets the keeper run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A keeper running on a pseudo-terminal (120×40).
pub struct Pty {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    _master: Box<dyn MasterPty + Send>,
    screen: Arc<Capture>,
    command: String,
    hive_log: Option<PathBuf>,
}

impl Pty {
    /// Start `keeper` on a fresh terminal; it becomes the session leader and foreground group.
    ///
    /// # Panics
    /// When no pseudo-terminal can be opened or the keeper cannot start.
    pub fn spawn(keeper: &Keeper) -> Self {
        let cmd = keeper.command();
        let mut builder = CommandBuilder::new(cmd.get_program());
        builder.args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => builder.env(key, value),
                None => builder.env_remove(key),
            }
        }
        builder.env("TERM", "xterm-256color");
        builder.cwd(std::env::current_dir().expect("current dir"));
        let pair = native_pty_system()
            .openpty(PtySize { rows: 40, cols: 120, pixel_width: 0, pixel_height: 0 })
            .expect("open a pseudo-terminal");
        let child = pair.slave.spawn_command(builder).unwrap_or_else(|e| panic!("spawn {cmd:?} on a pty: {e}"));
        drop(pair.slave);
        let screen = Capture::start(pair.master.try_clone_reader().expect("pty reader"));
        let writer = pair.master.take_writer().expect("pty writer");
        let hive_log = keeper.hive_log().map(PathBuf::from);
        Self { child, writer, _master: pair.master, screen, command: format!("{cmd:?}"), hive_log }
    }

    /// Type Ctrl+C.
    pub fn ctrl_c(&mut self) {
        self.writer.write_all(&[0x03]).and_then(|()| self.writer.flush()).expect("write Ctrl+C to the pty");
    }

    /// Everything shown so far, escape sequences included.
    pub fn text(&self) -> String {
        self.screen.text()
    }

    /// Wait until the screen (escape sequences removed) contains `needle`; panics with a dump if not.
    #[track_caller]
    pub fn wait_for(&self, timeout: Duration, needle: &str) {
        let found = self.screen.wait_for(timeout, |text| strip_ansi(text).contains(needle));
        assert!(found, "the terminal never showed {needle:?} within {timeout:?}\n{}", self.dump(None));
    }

    /// Command, exit code, what the terminal showed and the hive log.
    pub fn dump(&self, code: Option<u32>) -> String {
        let log = self.hive_log.as_ref().map(|p| std::fs::read_to_string(p).unwrap_or_default());
        format!(
            "command: {}\nexit code: {code:?}\n--- terminal (escaped) ---\n{:?}\n--- terminal ---\n{}\n--- hive log ---\n{}",
            self.command,
            self.text(),
            strip_ansi(&self.text()),
            log.as_deref().unwrap_or("(no hive)\n"),
        )
    }

    /// Wait for the keeper to exit (60 s max, then kill it and panic).
    #[track_caller]
    pub fn wait(self) -> PtyOutput {
        self.wait_timeout(RUN_TIMEOUT)
    }

    /// Wait for the keeper to exit within `timeout`, else kill it and panic with a dump.
    #[track_caller]
    pub fn wait_timeout(mut self, timeout: Duration) -> PtyOutput {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("keeper still running after {timeout:?}; killed\n{}", self.dump(None));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.screen.wait_eof(Duration::from_secs(5));
        let code = status.exit_code();
        PtyOutput { code, raw: self.text(), dump: self.dump(Some(code)) }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How a pty run ended.
#[derive(Debug, Clone)]
pub struct PtyOutput {
    /// Exit code.
    pub code: u32,
    /// Everything the terminal showed, escape sequences included.
    pub raw: String,
    dump: String,
}

impl PtyOutput {
    /// The screen's text with escape sequences removed.
    pub fn text(&self) -> String {
        strip_ansi(&self.raw)
    }

    /// Command, exit code, terminal and hive log, for failure messages.
    pub fn dump(&self) -> &str {
        &self.dump
    }

    /// Assert the exit code.
    #[track_caller]
    pub fn assert_code(&self, code: u32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.dump);
        self
    }

    /// Assert the (escape-free) screen contains `needle`.
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Self {
        assert!(self.text().contains(needle), "terminal lacks {needle:?}\n{}", self.dump);
        self
    }
}

/// `text` without ANSI escape sequences (CSI `ESC [ … final`, and two-byte `ESC x`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            // Parameters and intermediates, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Whether `text` holds any escape sequence.
pub fn has_ansi(text: &str) -> bool {
    text.contains('\x1b')
}
