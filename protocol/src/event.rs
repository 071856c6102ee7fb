//! Event payloads carried in the SSE `data:` field, tagged by `kind`.

use serde::{Deserialize, Serialize};

/// One event of a job's stream.
///
/// Sequence contract: `narration | progress | heartbeat` any number of times, then exactly one
/// terminal event ([`Event::Done`], [`Event::Error`] or [`Event::Cancelled`]), and nothing after
/// it. Just before the terminal event the hive emits a narration line with rbee's textual end
/// marker (`[DONE]`, `[ERROR]`, `[CANCELLED]`) so rbee-style clients that watch for it keep working.
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
    },
    /// Terminal: the job failed.
    Error {
        /// What failed, why, and what to do.
        message: String,
    },
    /// Terminal: the job was cancelled by `DELETE /v1/jobs/{id}`.
    Cancelled {
        /// Human summary.
        message: String,
    },
}

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

    /// The rbee end marker narrated before a terminal event.
    #[must_use]
    pub fn end_marker(&self) -> Option<&'static str> {
        match self {
            Self::Done { .. } => Some("[DONE]"),
            Self::Error { .. } => Some("[ERROR]"),
            Self::Cancelled { .. } => Some("[CANCELLED]"),
            _ => None,
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
            Event::Done { message: "ok".into(), path: Some("/p".into()), result: None },
            Event::Error { message: "bad".into() },
            Event::Cancelled { message: "stop".into() },
        ];
        for e in all {
            let json = e.to_json();
            assert!(json.contains(&format!(r#""kind":"{}""#, e.name())), "{json}");
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
            assert_eq!(e.is_terminal(), e.end_marker().is_some());
        }
    }
}
