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
    /// The server ended the stream cleanly (the last chunk of the body arrived).
    Closed,
    /// The connection broke: reset, or closed before the body's end. Never a clean end.
    Reset,
}

/// What the reader thread hands over.
enum Got {
    Frame(Frame),
    /// A frame that does not decode.
    Undecodable(String),
    /// Reading the body failed.
    Broken(String),
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
    frames: Receiver<Got>,
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
        Self::open(&url, last_event_id, hive.log_path().display().to_string())
    }

    /// Subscribe to any SSE `url`; `hive_log` names the log failures point at.
    ///
    /// # Panics
    /// When `url` cannot be reached.
    fn open(url: &str, last_event_id: Option<u64>, hive_log: String) -> Self {
        let last = last_event_id.map(|id| id.to_string());
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(id) = &last {
            headers.push(("Last-Event-ID", id));
        }
        let s =
            http::open("GET", url, &headers, None).unwrap_or_else(|e| panic!("GET {url}: {e}\nhive log: {hive_log}"));
        let content_type = s.header("content-type").map(str::to_owned);
        let (tx, frames) = mpsc::channel();
        let mut body = s.body;
        std::thread::spawn(move || {
            let mut decoder = Decoder::default();
            let mut buf = vec![0u8; 16 << 10];
            let mut marker = EndMarker::default();
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Got::Broken(e.to_string()));
                        return;
                    }
                };
                for frame in decoder.feed_checked(&buf[..n]) {
                    let read = match frame.map_err(|e| e.to_string()).and_then(|f| marker.check(f)) {
                        Ok(None) => continue,
                        Ok(Some(frame)) => Got::Frame(frame),
                        Err(e) => Got::Undecodable(e),
                    };
                    if tx.send(read).is_err() {
                        return;
                    }
                }
            }
            if let Err(e) = marker.at_end() {
                let _ = tx.send(Got::Undecodable(e));
            }
        });
        Self { status: s.status, content_type, frames, conn: s.conn, hive_log }
    }

    /// The next frame within `timeout`; [`SseEnd::Reset`] (once, then `Closed`) when the
    /// connection broke.
    ///
    /// # Panics
    /// On an undecodable frame.
    #[track_caller]
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Frame, SseEnd> {
        match self.frames.recv_timeout(timeout) {
            Ok(Got::Frame(frame)) => Ok(frame),
            Ok(Got::Undecodable(e)) => panic!("{e}\nhive log: {}", self.hive_log),
            Ok(Got::Broken(e)) => {
                eprintln!("SSE connection broke: {e}");
                Err(SseEnd::Reset)
            }
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
    ///
    /// # Panics
    /// When the connection breaks instead of ending cleanly.
    #[track_caller]
    pub fn collect_for(&mut self, window: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + window;
        let mut frames = Vec::new();
        loop {
            match self.next_frame(deadline.saturating_duration_since(Instant::now())) {
                Ok(f) => frames.push(f),
                Err(SseEnd::Reset) => panic!("the stream broke after {frames:#?}\nhive log: {}", self.hive_log),
                Err(_) => return frames,
            }
        }
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

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use rbee_protocol::{sse, Event};

    use super::*;
    use crate::harness::TIMEOUT;

    /// Serves one chunked SSE response with one frame; `clean` ends the body, else the
    /// connection just closes mid-body (what a reset looks like to the chunked reader).
    fn serve_once(clean: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/stream", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut head = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            while head.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let frame = sse::encode(1, &Event::narration("hello"));
            let mut out =
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned();
            out.push_str(&format!("{:x}\r\n{frame}\r\n", frame.len()));
            if clean {
                out.push_str("0\r\n\r\n");
            }
            s.write_all(out.as_bytes()).expect("write");
        });
        url
    }

    #[test]
    fn a_broken_connection_is_a_reset_not_a_clean_end() {
        for (clean, end) in [(true, SseEnd::Closed), (false, SseEnd::Reset)] {
            let mut sse = SseStream::open(&serve_once(clean), None, "(no hive)".into());
            assert_eq!(sse.next_frame(TIMEOUT).map(|f| f.event), Ok(Event::narration("hello")));
            assert_eq!(sse.next_frame(TIMEOUT).map(|f| f.event), Err(end), "clean end: {clean}");
        }
    }
}
