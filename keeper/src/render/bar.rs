//! TTY rendering: one indicatif bar per file; narration above the bars, heartbeats in their message.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rbee_protocol::text::sanitize;
use rbee_protocol::Event;

use super::format;

// `wide_bar` fills the line to the terminal's width, so long messages never wrap. The ETA is in
// the message, computed from the hive's rate (indicatif's own estimate is skewed by resumes).
const BAR: &str = "{prefix:.bold} [{wide_bar:.cyan/blue}] {percent:>3}% {bytes}/{total_bytes} {msg}";
const UNSIZED: &str = "{spinner} {prefix:.bold} {bytes} {msg}";
const WAITING: &str = "{spinner} {msg}";

/// One file's bar; its message is `<hive's rate> · ETA 12s · resumed from X · ⏳ 12s` (the last
/// heartbeat), with `🔁 retry 2/5 in 4 s: connection reset` while the hive waits to retry.
struct FileBar {
    bar: ProgressBar,
    rate: String,
    eta: Option<String>,
    resumed: Option<String>,
    beat: Option<String>,
    retry: Option<String>,
}

impl FileBar {
    fn refresh(&self) {
        if let Some(retry) = &self.retry {
            self.bar.set_message(sanitize(retry).into_owned());
            return;
        }
        let parts = [Some(&self.rate), self.eta.as_ref(), self.resumed.as_ref(), self.beat.as_ref()];
        let msg: Vec<&str> = parts.into_iter().flatten().map(String::as_str).collect();
        self.bar.set_message(sanitize(&msg.join(" · ")).into_owned());
    }
}

/// Progress bars on stderr.
pub(crate) struct Bars {
    multi: MultiProgress,
    files: HashMap<String, FileBar>,
    waiting: Option<ProgressBar>,
    /// The hive's retry state before any bar exists.
    retry: Option<String>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("bar templates are valid").progress_chars("=> ")
}

impl Bars {
    pub(crate) fn new() -> Self {
        Self { multi: MultiProgress::new(), files: HashMap::new(), waiting: None, retry: None }
    }

    pub(crate) fn event(&mut self, event: &Event) {
        match event {
            Event::Narration { message } => match format::retry_state(message) {
                Some(state) => self.retrying(state),
                None => self.println(message),
            },
            Event::Heartbeat { message, elapsed_secs } => self.heartbeat(message, *elapsed_secs),
            Event::Progress { file, bytes, total, rate, resumed_from } => {
                self.progress(file, *bytes, *total, *resumed_from, *rate);
            }
            Event::Done { .. } | Event::Error { .. } | Event::Cancelled { .. } | Event::Data { .. } => {}
        }
    }

    /// A line above the bars (a plain line while none is drawn), sanitized.
    pub(crate) fn println(&self, line: &str) {
        self.println_styled(&sanitize(line));
    }

    /// A line of ours (already safe, maybe styled) above the bars.
    pub(crate) fn println_styled(&self, line: &str) {
        let drawing = self.waiting.is_some() || !self.files.is_empty();
        if !drawing || self.multi.println(line).is_err() {
            eprintln!("{line}");
        }
    }

    /// The spinner shown before any bar exists.
    fn spinner(&mut self) -> &ProgressBar {
        self.waiting.get_or_insert_with(|| {
            let spinner = self.multi.add(ProgressBar::new_spinner().with_style(style(WAITING)));
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        })
    }

    /// The hive waits to retry: the live line says so (until bytes flow again).
    fn retrying(&mut self, state: String) {
        if self.files.is_empty() {
            self.spinner().set_message(sanitize(&state).into_owned());
            self.retry = Some(state);
            return;
        }
        for file in self.files.values_mut().filter(|f| !f.bar.is_finished()) {
            file.retry = Some(state.clone());
            file.refresh();
        }
    }

    /// Heartbeats go into the running bars' message (a spinner before any bar exists).
    fn heartbeat(&mut self, message: &str, elapsed_secs: u64) {
        if self.files.is_empty() {
            let line = format::heartbeat_line(message, elapsed_secs);
            let line = match &self.retry {
                Some(retry) => format!("{retry} · ⏳ {elapsed_secs}s"),
                None => line,
            };
            self.spinner().set_message(sanitize(&line).into_owned());
            return;
        }
        for file in self.files.values_mut().filter(|f| !f.bar.is_finished()) {
            file.beat = Some(format!("⏳ {elapsed_secs}s"));
            file.refresh();
        }
    }

    fn progress(&mut self, file: &str, bytes: u64, total: Option<u64>, resumed_from: u64, rate: f64) {
        if let Some(spinner) = self.waiting.take() {
            spinner.finish_and_clear();
        }
        self.retry = None;
        let multi = &self.multi;
        let entry = self.files.entry(file.to_owned()).or_insert_with(|| {
            let template = if total.is_some() { BAR } else { UNSIZED };
            let bar = ProgressBar::new(total.unwrap_or(0)).with_style(style(template)).with_position(bytes);
            let bar = multi.add(bar.with_prefix(sanitize(file).into_owned()));
            let resumed = format::resumed(resumed_from);
            FileBar { bar, rate: String::new(), eta: None, resumed, beat: None, retry: None }
        });
        if entry.bar.position() != bytes {
            entry.retry = None;
        }
        if entry.bar.is_finished() {
            return;
        }
        if let Some(total) = total {
            entry.bar.set_length(total);
        }
        entry.bar.set_position(bytes);
        entry.rate = format::rate(rate);
        let left = total.map(|t| t.saturating_sub(bytes)).filter(|&left| left > 0);
        entry.eta = left.and_then(|left| format::eta(left, rate)).map(|eta| format!("ETA {eta}"));
        entry.refresh();
        if total.is_some_and(|t| bytes >= t) {
            entry.bar.finish();
        }
    }

    /// Stop drawing; bars stay where they stopped and the cursor moves below them.
    ///
    /// After a Ctrl+C typed on the terminal, the terminal has already echoed `^C` past the bar
    /// (indicatif keeps the cursor at the right edge), which pushed the last drawn bar up a line:
    /// redrawing it would show it twice, so the live copy is cleared instead.
    pub(crate) fn finish(mut self, interrupted: bool) {
        if let Some(spinner) = self.waiting.take() {
            spinner.finish_and_clear();
        }
        for file in self.files.values_mut().filter(|f| !f.bar.is_finished()) {
            if interrupted {
                file.bar.finish_and_clear();
                continue;
            }
            file.eta = None;
            file.refresh();
            file.bar.abandon();
        }
        let drawn = !self.files.is_empty() && !interrupted;
        drop(self);
        if drawn {
            // indicatif leaves the cursor at the end of the last bar.
            eprintln!();
        }
    }
}
