//! [`SseStream`]: subscribe to `{hive}/v1/jobs/{id}/stream` (optionally with `Last-Event-ID`) and
//! read [`Frame`]s with timeouts; `disconnect` drops the connection mid-stream.

use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rbee_protocol::sse::{Decoder, Frame};

use super::{http, Hive};

/// Why [`SseStream::next_frame`] returned no frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseEnd {
    /// Nothing arrived in time.
    Timeout,
    /// The server ended the stream (or the connection broke).
    Closed,
}

/// The rich dialect's end: after the terminal event (which has an `id:`) comes rbee's end marker
/// as a plain frame without one, of the same kind, and then the stream closes. [`EndMarker::check`]
/// swallows that marker (`Ok(None)`) and refuses anything else after the terminal event.
#[derive(Debug, Default)]
pub struct EndMarker {
    terminal: Option<&'static str>,
    seen: bool,
}

impl EndMarker {
    /// `Ok(Some(frame))` to show, `Ok(None)` for the end marker, `Err` for a broken ending.
    ///
    /// # Errors
    /// A frame after the terminal event that is not its marker, or a second marker.
    pub fn check(&mut self, frame: Frame) -> Result<Option<Frame>, String> {
        match self.terminal {
            None => {
                if frame.event.is_terminal() {
                    if frame.id.is_none() {
                        return Err(format!("a terminal event without an id: {frame:?}"));
                    }
                    self.terminal = Some(frame.event.name());
                }
                Ok(Some(frame))
            }
            Some(kind) if !self.seen && frame.id.is_none() && frame.event.name() == kind => {
                self.seen = true;
                Ok(None)
            }
            Some(kind) => Err(format!("after the terminal `{kind}` event came {frame:?}, not its end marker")),
        }
    }

    /// At the end of the stream: the terminal event, if any, had its marker.
    ///
    /// # Errors
    /// When the stream closed between the terminal event and its marker.
    pub fn at_end(&self) -> Result<(), String> {
        match self.terminal {
            Some(kind) if !self.seen => Err(format!("the stream closed after `{kind}` without rbee's end marker")),
            _ => Ok(()),
        }
    }
}

/// A live SSE subscription; frames are read on a background thread.
#[derive(Debug)]
pub struct SseStream {
    /// HTTP status of the subscription.
    pub status: u16,
    /// `Content-Type` answered.
    pub content_type: Option<String>,
    frames: Receiver<Result<Frame, String>>,
    conn: TcpStream,
    hive_log: String,
}

impl SseStream {
    /// Subscribe to job `job_id`, replaying after `last_event_id` when given.
    ///
    /// # Panics
    /// When the hive cannot be reached.
    pub fn connect(hive: &Hive, job_id: &str, last_event_id: Option<u64>) -> Self {
        let url = format!("{}/v1/jobs/{job_id}/stream", hive.url());
        let last = last_event_id.map(|id| id.to_string());
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(id) = &last {
            headers.push(("Last-Event-ID", id));
        }
        let s = http::open("GET", &url, &headers, None).unwrap_or_else(|e| panic!("GET {url}: {e}\n{}", hive.log()));
        let content_type = s.header("content-type").map(str::to_owned);
        let (tx, frames) = mpsc::channel();
        let mut body = s.body;
        std::thread::spawn(move || {
            let mut decoder = Decoder::default();
            let mut buf = vec![0u8; 16 << 10];
            let mut marker = EndMarker::default();
            while let Ok(n @ 1..) = body.read(&mut buf) {
                for frame in decoder.feed_checked(&buf[..n]) {
                    let frame = frame.map_err(|e| e.to_string()).and_then(|f| marker.check(f));
                    if let Ok(None) = frame {
                        continue;
                    }
                    if tx.send(frame.map(|f| f.expect("checked"))).is_err() {
                        return;
                    }
                }
            }
            if let Err(e) = marker.at_end() {
                let _ = tx.send(Err(e));
            }
        });
        Self { status: s.status, content_type, frames, conn: s.conn, hive_log: hive.log_path().display().to_string() }
    }

    /// The next frame within `timeout`.
    ///
    /// # Panics
    /// On an undecodable frame.
    #[track_caller]
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Frame, SseEnd> {
        match self.frames.recv_timeout(timeout) {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e)) => panic!("{e}\nhive log: {}", self.hive_log),
            Err(RecvTimeoutError::Timeout) => Err(SseEnd::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(SseEnd::Closed),
        }
    }

    /// Frames up to and including the terminal one (done / error / cancelled).
    ///
    /// # Panics
    /// When none arrives within `timeout` (shows the frames so far).
    #[track_caller]
    pub fn until_terminal(&mut self, timeout: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_frame(left) {
                Ok(f) if f.event.is_terminal() => {
                    frames.push(f);
                    return frames;
                }
                Ok(f) => frames.push(f),
                Err(end) => panic!(
                    "no terminal event ({end:?}) within {timeout:?}; got {frames:#?}\nhive log: {}",
                    self.hive_log
                ),
            }
        }
    }

    /// Frames until `pred` matches one (included).
    ///
    /// # Panics
    /// When none matches within `timeout`.
    #[track_caller]
    pub fn until(&mut self, timeout: Duration, mut pred: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_frame(left) {
                Ok(f) => {
                    let done = pred(&f);
                    frames.push(f);
                    if done {
                        return frames;
                    }
                }
                Err(end) => panic!(
                    "no matching frame ({end:?}) within {timeout:?}; got {frames:#?}\nhive log: {}",
                    self.hive_log
                ),
            }
        }
    }

    /// Every frame arriving within `window` (stops early when the stream ends).
    pub fn collect_for(&mut self, window: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + window;
        let mut frames = Vec::new();
        while let Ok(f) = self.next_frame(deadline.saturating_duration_since(Instant::now())) {
            frames.push(f);
        }
        frames
    }

    /// Drop the connection now (mid-stream).
    pub fn disconnect(self) {
        let _ = self.conn.shutdown(Shutdown::Both);
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        let _ = self.conn.shutdown(Shutdown::Both);
    }
}
