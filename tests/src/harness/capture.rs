//! [`Capture`]: everything a child writes to one stream (a pipe or a terminal), read by a
//! background thread, with waits for what it shows. The keeper's pipes and the pty share it.

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The bytes of one output stream so far, and whether it ended.
#[derive(Debug, Default)]
pub struct Capture {
    state: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

impl Capture {
    /// Reads `source` to its end on a new thread (a terminal's EIO, once no process holds its
    /// other side, ends it too).
    pub fn start(mut source: impl Read + Send + 'static) -> Arc<Self> {
        let capture = Arc::new(Self::default());
        let sink = capture.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = source.read(&mut buf) {
                sink.state.lock().expect("capture lock").0.extend_from_slice(&buf[..n]);
                sink.changed.notify_all();
            }
            sink.state.lock().expect("capture lock").1 = true;
            sink.changed.notify_all();
        });
        capture
    }

    /// Everything so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.state.lock().expect("capture lock").0).into_owned()
    }

    /// Everything so far as lines (`\r` dropped), each ended by `\n`.
    pub fn lines_text(&self) -> String {
        self.text().lines().map(|l| format!("{}\n", l.trim_end_matches('\r'))).collect()
    }

    /// Waits until the text so far satisfies `pred`; `false` when it ended or `timeout` passed.
    pub fn wait_for(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> bool {
        self.wait_until(timeout, |text, _| pred(text))
    }

    /// [`Capture::wait_for`] with whether the stream ended.
    fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&str, bool) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().expect("capture lock");
        loop {
            if pred(&String::from_utf8_lossy(&state.0), state.1) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.1 || left.is_zero() {
                return false;
            }
            state = self.changed.wait_timeout(state, left).expect("capture lock").0;
        }
    }

    /// The first complete line (or the last one, once the stream ended) matching `pred`.
    pub fn wait_for_line(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> Option<String> {
        let mut found = None;
        self.wait_until(timeout, |text, ended| {
            let complete = if ended { text } else { text.rsplit_once('\n').map_or("", |(done, _)| done) };
            found = complete.lines().map(|l| l.trim_end_matches('\r')).find(|l| pred(l)).map(str::to_owned);
            found.is_some()
        });
        found
    }

    /// Waits (at most `timeout`) until the stream ended.
    pub fn wait_eof(&self, timeout: Duration) {
        let state = self.state.lock().expect("capture lock");
        drop(self.changed.wait_timeout_while(state, timeout, |s| !s.1).expect("capture lock"));
    }
}
