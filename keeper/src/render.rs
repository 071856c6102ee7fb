//! How job events reach the user: TTY bars, plain lines, NDJSON, or (quiet) nothing.

mod bar;
pub(crate) use rbee_protocol::text as format;
mod plain;

use std::io::{IsTerminal, Write};
use std::time::Instant;

use rbee_protocol::sse::Frame;
use rbee_protocol::Event;

use crate::error::StdoutClosed;

// The one printer: every line the keeper itself shows goes through [`stdout_line`] (results),
// [`note`] (status lines, silent with `--quiet`) or [`warn`] (warnings and errors, always), besides
// the job events a [`Renderer`] draws. `--quiet` and `--json` hold everywhere by construction.

/// A status line on stderr, unless `--quiet`.
pub(crate) fn note(mode: Mode, line: &str) {
    if mode != Mode::Quiet {
        eprintln!("{line}");
    }
}

/// A warning or error on stderr, whatever the mode.
pub(crate) fn warn(line: &str) {
    eprintln!("{line}");
}

/// Write `line` and a newline to stdout, flushed; any failure means no one reads it any more.
pub(crate) fn stdout_line(line: &str) -> Result<(), StdoutClosed> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|_| StdoutClosed)
}

/// The output style, chosen once from the flags and whether stderr is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Progress bars on stderr.
    Bar,
    /// Plain lines on stderr, progress throttled.
    Plain,
    /// Every event as one JSON line on stdout; nothing else on stdout.
    Json,
    /// Results and errors only.
    Quiet,
}

impl Mode {
    pub(crate) fn pick(json: bool, quiet: bool, tty: bool) -> Self {
        match (json, quiet, tty) {
            (true, _, _) => Self::Json,
            (false, true, _) => Self::Quiet,
            (false, false, true) => Self::Bar,
            (false, false, false) => Self::Plain,
        }
    }

    pub(crate) fn detect(json: bool, quiet: bool) -> Self {
        Self::pick(json, quiet, std::io::stderr().is_terminal())
    }
}

/// Renders one job's events.
pub(crate) enum Renderer {
    Bar(bar::Bars),
    Plain(plain::Plain),
    /// NDJSON lines carrying this job id; `closed` once stdout refused a line.
    Json {
        job_id: String,
        closed: bool,
    },
    Quiet,
}

impl Renderer {
    pub(crate) fn new(mode: Mode, job_id: &str) -> Self {
        match mode {
            Mode::Bar => Self::Bar(bar::Bars::new()),
            Mode::Plain => Self::Plain(plain::Plain::default()),
            Mode::Json => Self::Json { job_id: job_id.to_owned(), closed: false },
            Mode::Quiet => Self::Quiet,
        }
    }

    /// Show one event. Humans see neither terminal events (the caller reports them) nor rbee's
    /// textual end markers; JSON shows everything.
    pub(crate) fn event(&mut self, frame: &Frame) {
        let event = &frame.event;
        match self {
            Self::Json { closed: true, .. } => {}
            Self::Json { job_id, closed } => *closed = stdout_line(&json_line(job_id, frame.id, event)).is_err(),
            _ if is_end_marker(event) => {}
            Self::Bar(bars) => bars.event(event),
            Self::Plain(plain) => {
                if let Some(line) = plain.line(event, Instant::now()) {
                    eprintln!("{}", rbee_protocol::escape(&line));
                }
            }
            Self::Quiet => {}
        }
    }

    /// Whether stdout was closed under the events (then the caller stops at once).
    pub(crate) fn stdout_closed(&self) -> bool {
        matches!(self, Self::Json { closed: true, .. })
    }

    /// Stop drawing before the final lines (`interrupted`: by a Ctrl+C).
    pub(crate) fn finish(self, interrupted: bool) {
        if let Self::Bar(bars) = self {
            bars.finish(interrupted);
        }
    }
}

/// A narration that only carries `[DONE]`, `[ERROR]` or `[CANCELLED]`.
fn is_end_marker(event: &Event) -> bool {
    matches!(event, Event::Narration { message } if matches!(message.trim(), "[DONE]" | "[ERROR]" | "[CANCELLED]"))
}

/// `{"id":7,"job_id":"job-…","kind":"progress",…}`: the event's own JSON, prefixed.
fn json_line(job_id: &str, id: Option<u64>, event: &Event) -> String {
    let body = event.to_json();
    let fields = body.strip_prefix('{').unwrap_or(&body);
    let id = id.map_or_else(|| "null".to_owned(), |id| id.to_string());
    format!("{{\"id\":{id},\"job_id\":{},{fields}", serde_json::Value::from(job_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_id_and_job() {
        let line = json_line("job-1", Some(7), &Event::narration("hi"));
        assert_eq!(line, r#"{"id":7,"job_id":"job-1","kind":"narration","message":"hi"}"#);
        let value: serde_json::Value = serde_json::from_str(&json_line("j", None, &Event::narration("x"))).unwrap();
        assert!(value["id"].is_null());
    }

    #[test]
    fn end_markers_are_hidden_from_humans() {
        assert!(is_end_marker(&Event::narration("[DONE]")));
        assert!(is_end_marker(&Event::narration("[CANCELLED]")));
        assert!(!is_end_marker(&Event::narration("done: [DONE] soon")));
    }

    #[test]
    fn mode_choice() {
        assert_eq!(Mode::pick(true, true, true), Mode::Json);
        assert_eq!(Mode::pick(false, true, true), Mode::Quiet);
        assert_eq!(Mode::pick(false, false, true), Mode::Bar);
        assert_eq!(Mode::pick(false, false, false), Mode::Plain);
    }
}
