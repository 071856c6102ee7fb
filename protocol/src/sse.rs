//! SSE framing of [`Event`]s, for both dialects, and an incremental decoder that reads either.
//!
//! Rich dialect ([`encode`]): `event:<name>\nid:<seq>\ndata:<data>\n\n`, where a narration has an
//! empty name (a plain `data:` frame: SSE's default `message` type) and its text as data, and every
//! other event its `kind` as name and JSON as data. This is exactly what `tide::sse` writes.
//! Text dialect ([`text_frame`]): `data: <line>\n\n`, nothing else.
//!
//! [`Decoder`] accepts arbitrary byte chunks (split anywhere, CRLF or LF) and yields frames: named
//! frames decode as JSON events; unnamed ones are text — an rbee end marker becomes the terminal
//! event it stands for ([`Event::from_end_line`]), any other text a narration. So one decoder
//! reads this hive in either dialect and rbee's own hive.

use crate::Event;

/// The media type that asks for the rich dialect (in `Accept`) and labels it (in `Content-Type`).
pub const EVENT_STREAM: &str = "text/event-stream";

/// The request header that resumes a stream after the id it names (and asks for the rich dialect).
pub const LAST_EVENT_ID: &str = "Last-Event-ID";

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

/// One rich-dialect frame for `event` with sequence number `id`.
#[must_use]
pub fn encode(id: u64, event: &Event) -> String {
    format!("event:{}\nid:{}\ndata:{}\n\n", event.sse_name(), id, event.sse_data())
}

/// One text-dialect frame: `data: <line>`.
#[must_use]
pub fn text_frame(line: &str) -> String {
    format!("data: {line}\n\n")
}

/// Decode a frame's fields.
///
/// # Errors
/// When a named frame's `data` is not a JSON [`Event`].
pub fn decode(name: Option<&str>, id: Option<&str>, data: &str) -> Result<Frame, DecodeError> {
    let id = id.and_then(|s| s.trim().parse().ok());
    let event = match name.map(str::trim).filter(|n| !n.is_empty() && *n != "message") {
        None => Event::from_end_line(data).unwrap_or_else(|| Event::narration(data)),
        Some("data") => rbee_data(data)?,
        Some(_) => {
            serde_json::from_str(data).map_err(|e| DecodeError { data: data.to_owned(), reason: e.to_string() })?
        }
    };
    Ok(Frame { id, event })
}

/// rbee's `event: data` frame: `{"action":…,"payload":…}` (no `kind` tag), or one of our events.
fn rbee_data(data: &str) -> Result<Event, DecodeError> {
    #[derive(serde::Deserialize)]
    struct Data {
        action: String,
        #[serde(default)]
        payload: serde_json::Value,
    }
    let err = |e: serde_json::Error| DecodeError { data: data.to_owned(), reason: e.to_string() };
    match serde_json::from_str::<Data>(data) {
        Ok(Data { action, payload }) => Ok(Event::Data { action, payload }),
        Err(e) => serde_json::from_str(data).map_err(|_| err(e)),
    }
}

/// Incremental SSE parser.
#[derive(Debug, Default)]
pub struct Decoder {
    line: Vec<u8>,
    data: Option<String>,
    name: Option<String>,
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
            let name = self.name.take();
            let id = self.id.take();
            let data = self.data.take()?;
            let frame = decode(name.as_deref(), id.as_deref(), &data);
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
            "event" => self.name = Some(value.to_owned()),
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
            Event::Done {
                message: "ok".into(),
                path: Some("/c/x".into()),
                result: Some(serde_json::json!({"a":[1]})),
                lines: vec![],
            },
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
    fn text_frames_are_narration_and_markers_end() {
        let text = format!("{}{}{}", text_frame("📥 hello"), text_frame("[ERROR] no such file"), "data:[DONE]\n\n");
        let got: Vec<_> = Decoder::default().feed(text.as_bytes()).into_iter().map(|f| f.event).collect();
        assert_eq!(
            got,
            [Event::narration("📥 hello"), Event::Error { message: "no such file".into() }, Event::done("")]
        );
        // rbee's hive sends results as `event: data` JSON with an action and a payload.
        let got =
            Decoder::default().feed(b"event: data\ndata: {\"action\":\"model_list\",\"payload\":{\"models\":[]}}\n\n");
        let payload = serde_json::json!({"models": []});
        assert_eq!(got[0].event, Event::Data { action: "model_list".into(), payload });
        assert!(Decoder::default().feed_checked(b"event: data\ndata: {\"x\":1}\n\n")[0].is_err());
    }

    #[test]
    fn garbage_is_reported() {
        let got = Decoder::default().feed_checked(b"event: progress\ndata: nope\n\n");
        assert!(got[0].is_err());
    }
}
