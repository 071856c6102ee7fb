//! How job events reach the user: TTY bars, plain lines, NDJSON, or (quiet) nothing.

mod bar;
pub(crate) use rbee_protocol::text as format;
mod plain;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rbee_protocol::sse::Frame;
use rbee_protocol::text::{sanitize, Narration};
use rbee_protocol::Event;
use serde_json::Value;

use crate::error::StdoutClosed;

// The one printer: every line the keeper itself shows goes through [`stdout_line`] (results),
// [`note`] (status lines, silent with `--quiet`) or [`warn`] (warnings and errors, always), besides
// the job events a [`Renderer`] draws. `--quiet` and `--json` hold everywhere by construction, and
// every line passes the one sanitizer ([`safe`]): whatever a hive, a hub or a user wrote, no
// escape sequence, control, bidi or zero-width character reaches the terminal raw.

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// `-v`: show rbee's narration headers (module and action), dimmed.
pub(crate) fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// `text` with each of its lines through [`sanitize`] (the line breaks kept).
pub(crate) fn safe(text: &str) -> String {
    text.split('\n').map(|l| sanitize(l)).collect::<Vec<_>>().join("\n")
}

/// A status line on stderr, unless `--quiet`.
pub(crate) fn note(mode: Mode, line: &str) {
    if mode != Mode::Quiet {
        eprintln!("{}", safe(line));
    }
}

/// A warning or error on stderr, whatever the mode.
pub(crate) fn warn(line: &str) {
    eprintln!("{}", safe(line));
}

/// Write `line` and a newline to stdout, flushed; any failure means no one reads it any more.
pub(crate) fn stdout_line(line: &str) -> Result<(), StdoutClosed> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", safe(line)).and_then(|()| out.flush()).map_err(|_| StdoutClosed)
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

/// Renders one job's events, and keeps the results rbee's hive sends as `event: data`.
pub(crate) struct Renderer {
    out: Out,
    verbose: bool,
    data: Vec<(String, Value)>,
}

enum Out {
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
        let out = match mode {
            Mode::Bar => Out::Bar(bar::Bars::new()),
            Mode::Plain => Out::Plain(plain::Plain::default()),
            Mode::Json => Out::Json { job_id: job_id.to_owned(), closed: false },
            Mode::Quiet => Out::Quiet,
        };
        Self { out, verbose: verbose(), data: Vec::new() }
    }

    /// Show one event. Humans see neither terminal events (the caller reports them) nor rbee's
    /// textual end markers; JSON shows everything. A narration shows one line per line of its
    /// message (rbee's header line only with `-v`).
    pub(crate) fn event(&mut self, frame: &Frame) {
        match &frame.event {
            Event::Narration { message } => return self.narration(frame.id, message),
            Event::Data { action, payload } => self.data.push((action.clone(), payload.clone())),
            _ => {}
        }
        let event = &frame.event;
        match &mut self.out {
            Out::Json { closed: true, .. } => {}
            Out::Json { job_id, closed } => *closed = stdout_line(&json_line(job_id, frame.id, event)).is_err(),
            Out::Bar(bars) => bars.event(event),
            Out::Plain(plain) => {
                if let Some(line) = plain.line(event, Instant::now()) {
                    eprintln!("{}", sanitize(&line));
                }
            }
            Out::Quiet => {}
        }
    }

    fn narration(&mut self, id: Option<u64>, message: &str) {
        if is_end_marker(message) && !matches!(self.out, Out::Json { .. }) {
            return;
        }
        let narration = Narration::parse(message);
        if let Some(details) = details(message) {
            self.data.push(details);
        }
        let header = narration.header.filter(|_| self.verbose);
        match &mut self.out {
            Out::Json { closed: true, .. } | Out::Quiet => {}
            Out::Json { job_id, closed } => {
                if !narration.lines.is_empty() {
                    let event = Event::narration(narration.lines.join("\n"));
                    *closed = stdout_line(&json_line(job_id, id, &event)).is_err();
                }
            }
            Out::Bar(bars) => {
                if let Some(header) = header {
                    bars.println_styled(&format!("\u{1b}[2m{header}\u{1b}[0m"));
                }
                narration.lines.iter().for_each(|l| bars.event(&Event::narration(l.clone())));
            }
            Out::Plain(_) => {
                header.iter().chain(&narration.lines).for_each(|l| eprintln!("{l}"));
            }
        }
    }

    /// The results rbee's hive sent (`event: data`, or a narration that is a model's JSON).
    pub(crate) fn take_data(&mut self) -> Vec<(String, Value)> {
        std::mem::take(&mut self.data)
    }

    /// Whether stdout was closed under the events (then the caller stops at once).
    pub(crate) fn stdout_closed(&self) -> bool {
        matches!(self.out, Out::Json { closed: true, .. })
    }

    /// Stop drawing before the final lines (`interrupted`: by a Ctrl+C).
    pub(crate) fn finish(self, interrupted: bool) {
        if let Out::Bar(bars) = self.out {
            bars.finish(interrupted);
        }
    }
}

/// rbee's `model_get` narrates the model as pretty JSON after its header: that object, as a
/// `model_get` result.
fn details(message: &str) -> Option<(String, Value)> {
    let body = match message.strip_prefix("\u{1b}[1m") {
        Some(rest) => rest.split_once('\n')?.1,
        None => message,
    };
    let body = body.trim();
    if !body.starts_with('{') {
        return None;
    }
    let value: Value = serde_json::from_str(body).ok()?;
    value.get("id").is_some().then(|| ("model_get".to_owned(), value))
}

/// A narration that only carries `[DONE]`, `[ERROR]` or `[CANCELLED]`.
fn is_end_marker(message: &str) -> bool {
    matches!(message.trim(), "[DONE]" | "[ERROR]" | "[CANCELLED]")
}

/// `{"id":7,"job_id":"job-…","kind":"progress",…}`: the event's own JSON, prefixed.
fn json_line(job_id: &str, id: Option<u64>, event: &Event) -> String {
    let body = event.to_json();
    let fields = body.strip_prefix('{').unwrap_or(&body);
    let id = id.map_or_else(|| "null".to_owned(), |id| id.to_string());
    let line = format!("{{\"id\":{id},\"job_id\":{},{fields}", serde_json::Value::from(job_id));
    rbee_protocol::text::json(&line).into_owned()
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
        assert!(is_end_marker("[DONE]"));
        assert!(is_end_marker("[CANCELLED]"));
        assert!(!is_end_marker("done: [DONE] soon"));
    }

    #[test]
    fn json_and_lines_are_safe() {
        let line = json_line("j", None, &Event::narration("a\u{202e}b\u{2028}"));
        assert!(line.contains(r"a\u202eb\u2028"), "{line}");
        assert_eq!(safe("\u{1b}[31mred\u{1b}[0m\nok\u{1b}]0;t\u{7}"), "red\nok\\u{1b}]0;t\\u{7}");
        let model = "\u{1b}[1mf\u{1b}[0m \u{1b}[2ma\u{1b}[0m\n{\n  \"id\": \"m\",\n  \"size\": 1\n}\n";
        assert_eq!(details(model).map(|(a, v)| (a, v["id"].clone())), Some(("model_get".into(), "m".into())));
        assert_eq!(details("{not json"), None);
    }

    #[test]
    fn mode_choice() {
        assert_eq!(Mode::pick(true, true, true), Mode::Json);
        assert_eq!(Mode::pick(false, true, true), Mode::Quiet);
        assert_eq!(Mode::pick(false, false, true), Mode::Bar);
        assert_eq!(Mode::pick(false, false, false), Mode::Plain);
    }
}
