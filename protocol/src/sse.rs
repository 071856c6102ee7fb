//! The SSE framing of [`Event`]s: `event:<kind>\nid:<seq>\ndata:<json>\n\n`.
//!
//! [`encode`] writes one frame; [`Decoder`] is an incremental parser that accepts arbitrary byte
//! chunks (split anywhere, CRLF or LF) and yields complete frames.

use crate::Event;

/// One decoded SSE frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The `id:` field, when numeric.
    pub id: Option<u64>,
    /// The decoded payload.
    pub event: Event,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The raw `data:` text.
    pub data: String,
    /// The JSON error.
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "undecodable SSE event ({}): {}", self.reason, self.data)
    }
}

impl std::error::Error for DecodeError {}

/// One frame for `event` with sequence number `id`.
#[must_use]
pub fn encode(id: u64, event: &Event) -> String {
    format!("event:{}\nid:{}\ndata:{}\n\n", event.name(), id, event.to_json())
}

/// Decode a frame's fields (`event:` name is advisory; the JSON `kind` decides).
///
/// # Errors
/// When `data` is not a JSON [`Event`].
pub fn decode(id: Option<&str>, data: &str) -> Result<Frame, DecodeError> {
    let event = serde_json::from_str(data).map_err(|e| DecodeError { data: data.to_owned(), reason: e.to_string() })?;
    Ok(Frame { id: id.and_then(|s| s.trim().parse().ok()), event })
}

/// Incremental SSE parser.
#[derive(Debug, Default)]
pub struct Decoder {
    line: Vec<u8>,
    data: Option<String>,
    id: Option<String>,
    /// `id` of the last dispatched frame (what to send as `Last-Event-ID`).
    pub last_id: Option<u64>,
}

impl Decoder {
    /// Feed bytes; returns every frame completed by them (undecodable ones are skipped).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        self.feed_checked(bytes).into_iter().filter_map(Result::ok).collect()
    }

    /// Feed bytes; returns every frame completed by them, with decode errors.
    pub fn feed_checked(&mut self, bytes: &[u8]) -> Vec<Result<Frame, DecodeError>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if let Some(frame) = self.line_done(&String::from_utf8_lossy(&line)) {
                    out.push(frame);
                }
            } else {
                self.line.push(b);
            }
        }
        out
    }

    fn line_done(&mut self, line: &str) -> Option<Result<Frame, DecodeError>> {
        if line.is_empty() {
            let data = self.data.take()?;
            let frame = decode(self.id.as_deref(), &data);
            if let Ok(f) = &frame {
                if f.id.is_some() {
                    self.last_id = f.id;
                }
            }
            return Some(frame);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Event> {
        vec![
            Event::narration("start: ünïcode ✓"),
            Event::Progress { file: "m.gguf".into(), bytes: 1 << 40, total: None, rate: 0.0, resumed_from: 0 },
            Event::Heartbeat { message: "still downloading…".into(), elapsed_secs: 9 },
            Event::Done { message: "ok".into(), path: Some("/c/x".into()), result: Some(serde_json::json!({"a":[1]})) },
        ]
    }

    #[test]
    fn round_trip_split_at_every_byte() {
        let events = sample();
        let text: String = events.iter().enumerate().map(|(i, e)| encode(i as u64, e)).collect();
        for split in 0..text.len() {
            let mut dec = Decoder::default();
            let mut got = dec.feed(&text.as_bytes()[..split]);
            got.extend(dec.feed(&text.as_bytes()[split..]));
            let back: Vec<_> = got.into_iter().map(|f| f.event).collect();
            assert_eq!(back, events, "split at {split}");
            assert_eq!(dec.last_id, Some(3));
        }
    }

    #[test]
    fn crlf_comments_and_spaces() {
        let text =
            ": keepalive\r\nevent: narration\r\nid: 4\r\ndata: {\"kind\":\"narration\",\"message\":\"x\"}\r\n\r\n";
        let got = Decoder::default().feed(text.as_bytes());
        assert_eq!(got, vec![Frame { id: Some(4), event: Event::narration("x") }]);
    }

    #[test]
    fn garbage_is_reported() {
        let got = Decoder::default().feed_checked(b"data: nope\n\n");
        assert!(got[0].is_err());
    }
}
