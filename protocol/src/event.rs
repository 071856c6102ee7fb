//! Event payloads carried in the SSE `data:` field, tagged by `kind`.

use serde::{Deserialize, Serialize};

use crate::{markers, text};

/// One event of a job's stream.
///
/// Sequence contract: `narration | progress | heartbeat` any number of times, then exactly one
/// terminal event ([`Event::Done`], [`Event::Error`] or [`Event::Cancelled`]), and nothing after
/// it. On the wire a terminal event is followed by rbee's textual end marker ([`Event::end_line`]:
/// `[DONE]`, `[ERROR] <message>`, `[CANCELLED]`), the last line of every stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A human-readable line.
    Narration {
        /// The line.
        message: String,
    },
    /// Bytes of one file on disk so far.
    Progress {
        /// Path of the file inside the repo.
        file: String,
        /// Bytes present in the cache (including resumed bytes).
        bytes: u64,
        /// Expected size, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        /// Transfer rate over the last interval, bytes per second.
        rate: f64,
        /// Offset the download resumed from (0 for a fresh download).
        #[serde(default)]
        resumed_from: u64,
    },
    /// "Still working" signal, sent at the hive's heartbeat interval while a job runs.
    Heartbeat {
        /// Human text, e.g. `still downloading…`.
        message: String,
        /// Seconds since the job started.
        elapsed_secs: u64,
    },
    /// A structured result as rbee's hive sends it, as an `event: data` frame with
    /// `{"action":"model_list","payload":{"models":[…]}}` (this hive never sends one).
    Data {
        /// What the payload is the result of (`model_list`, …).
        action: String,
        /// The result.
        #[serde(default)]
        payload: serde_json::Value,
    },
    /// Terminal: the job succeeded.
    Done {
        /// Human summary.
        message: String,
        /// Local path of the result (snapshot file or directory), when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Structured result, when the operation returns data (e.g. a model listing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<serde_json::Value>,
        /// The result as human lines (what rbee's text dialect shows before `[DONE]`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lines: Vec<String>,
    },
    /// Terminal: the job failed.
    Error {
        /// What failed, why, and what to do.
        message: String,
    },
    /// Terminal: the job was cancelled by `DELETE /v1/jobs/{id}` (or by the hive's shutdown, whose
    /// message is then [`SHUTTING_DOWN`]).
    Cancelled {
        /// Human summary.
        message: String,
    },
}

/// The message of the `cancelled` event a hive's shutdown (SIGINT, SIGTERM) ends its jobs with.
pub const SHUTTING_DOWN: &str = "the hive is shutting down";

impl Event {
    /// A narration line.
    pub fn narration(message: impl Into<String>) -> Self {
        Self::Narration { message: message.into() }
    }

    /// The SSE `event:` name, equal to the `kind` tag.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Narration { .. } => "narration",
            Self::Progress { .. } => "progress",
            Self::Heartbeat { .. } => "heartbeat",
            Self::Data { .. } => "data",
            Self::Done { .. } => "done",
            Self::Error { .. } => "error",
            Self::Cancelled { .. } => "cancelled",
        }
    }

    /// Whether this event ends the stream.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Done { .. } | Self::Error { .. } | Self::Cancelled { .. })
    }

    /// A successful end with a summary only.
    pub fn done(message: impl Into<String>) -> Self {
        Self::Done { message: message.into(), path: None, result: None, lines: Vec::new() }
    }

    /// rbee's end marker line for a terminal event: `[DONE]`, `[CANCELLED]` or
    /// `[ERROR] <message>` (the message on one line, control characters escaped).
    #[must_use]
    pub fn end_line(&self) -> Option<String> {
        match self {
            Self::Done { .. } => Some(markers::DONE.to_owned()),
            Self::Cancelled { .. } => Some(markers::CANCELLED.to_owned()),
            Self::Error { message } => {
                Some(format!("{} {}", markers::ERROR_PREFIX, text::defuse_markers(&text::one_line(message))))
            }
            _ => None,
        }
    }

    /// The terminal event an rbee end marker line stands for (`None` for other lines).
    #[must_use]
    pub fn from_end_line(line: &str) -> Option<Self> {
        let line = line.trim();
        if line == markers::DONE {
            return Some(Self::done(""));
        }
        if line == markers::CANCELLED {
            return Some(Self::Cancelled { message: "the job was cancelled on the hive".into() });
        }
        let message = line.strip_prefix(markers::ERROR_PREFIX)?;
        Some(Self::Error { message: message.trim_start().to_owned() })
    }

    /// The SSE `event:` name in the rich dialect: empty (a plain `data:` frame) for narration,
    /// the `kind` otherwise.
    #[must_use]
    pub fn sse_name(&self) -> &'static str {
        match self {
            Self::Narration { .. } => "",
            other => other.name(),
        }
    }

    /// The SSE `data:` of the rich dialect: the text for narration, JSON otherwise; one line.
    #[must_use]
    pub fn sse_data(&self) -> String {
        match self {
            Self::Narration { message } => text::safe_line(message),
            other => other.to_json(),
        }
    }

    /// JSON for the SSE `data:` field (always one line).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let all = [
            Event::narration("hi"),
            Event::Progress { file: "a".into(), bytes: 5, total: Some(10), rate: 1.5, resumed_from: 2 },
            Event::Heartbeat { message: "still".into(), elapsed_secs: 3 },
            Event::Done { message: "ok".into(), path: Some("/p".into()), result: None, lines: vec!["l".into()] },
            Event::Error { message: "bad".into() },
            Event::Cancelled { message: "stop".into() },
        ];
        for e in all {
            let json = e.to_json();
            assert!(json.contains(&format!(r#""kind":"{}""#, e.name())), "{json}");
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
            assert_eq!(e.is_terminal(), e.end_line().is_some());
            if let Some(line) = e.end_line() {
                assert_eq!(Event::from_end_line(&line).map(|t| t.name()), Some(e.name()));
            }
        }
    }

    #[test]
    fn end_lines_are_rbee_markers() {
        assert_eq!(Event::done("x").end_line().as_deref(), Some("[DONE]"));
        let err = Event::Error { message: "file not found\nretry".into() };
        assert_eq!(err.end_line().as_deref(), Some("[ERROR] file not found\\u{a}retry"));
        assert_eq!(Event::from_end_line("[ERROR] boom"), Some(Event::Error { message: "boom".into() }));
        assert_eq!(Event::from_end_line("[DONE] soon"), None);
        assert_eq!(Event::narration(" a\nb ").sse_data(), "a\\u{a}b");
        assert_eq!(Event::narration("a").sse_name(), "");
    }
}
