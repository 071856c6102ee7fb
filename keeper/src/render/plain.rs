//! Plain-line rendering for logs and pipes: one line per event, progress at most once a second.

use std::time::{Duration, Instant};

use rbee_protocol::text::TextStream;
use rbee_protocol::Event;

use super::format;

/// Least time between two progress lines of the same file.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Decides which events become lines.
#[derive(Debug)]
pub(crate) struct Plain {
    throttle: TextStream,
    seen: std::collections::HashSet<String>,
}

impl Default for Plain {
    fn default() -> Self {
        Self { throttle: TextStream::every(PROGRESS_EVERY), seen: std::collections::HashSet::new() }
    }
}

impl Plain {
    /// The line for `event` seen at `now`, if it deserves one.
    pub(crate) fn line(&mut self, event: &Event, now: Instant) -> Option<String> {
        match event {
            Event::Narration { message } => Some(format::one_line(message)),
            Event::Heartbeat { message, elapsed_secs } => Some(format::heartbeat_line(message, *elapsed_secs)),
            Event::Progress { file, bytes, total, rate, resumed_from } => {
                let first = self.seen.insert(file.clone());
                let finished = total.is_some_and(|t| *bytes >= t);
                let due = self.throttle.due(file, now, finished);
                let line = due.then(|| format::progress_line(file, *bytes, *total, *rate))?;
                match format::resumed(*resumed_from).filter(|_| first) {
                    Some(resumed) => Some(format!("{line} ({resumed})")),
                    None => Some(line),
                }
            }
            Event::Done { .. } | Event::Error { .. } | Event::Cancelled { .. } | Event::Data { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(file: &str, bytes: u64) -> Event {
        Event::Progress { file: file.into(), bytes, total: Some(100), rate: 1.0, resumed_from: 0 }
    }

    #[test]
    fn progress_is_throttled_per_file() {
        let mut plain = Plain::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(plain.line(&progress("a", 1), at(0)).is_some(), "first line prints");
        assert!(plain.line(&progress("a", 2), at(300)).is_none());
        assert!(plain.line(&progress("b", 2), at(400)).is_some(), "other file has its own clock");
        assert!(plain.line(&progress("a", 3), at(999)).is_none());
        assert!(plain.line(&progress("a", 4), at(1000)).is_some());
        assert!(plain.line(&progress("a", 5), at(1100)).is_none());
        assert!(plain.line(&progress("a", 100), at(1200)).is_some(), "completion always prints");
    }

    #[test]
    fn the_first_line_tells_a_resume() {
        let mut plain = Plain::default();
        let now = Instant::now();
        let resumed = Event::Progress { file: "a".into(), bytes: 60, total: Some(100), rate: 1.0, resumed_from: 2048 };
        assert!(plain.line(&resumed, now).unwrap().ends_with("(resumed from 2.0 KiB)"));
        let later = now + PROGRESS_EVERY;
        assert!(!plain.line(&resumed, later).unwrap().contains("resumed"));
    }

    #[test]
    fn narration_and_heartbeats_always_print() {
        let mut plain = Plain::default();
        let now = Instant::now();
        assert_eq!(plain.line(&Event::narration("hi"), now).as_deref(), Some("hi"));
        let beat = Event::Heartbeat { message: "still downloading…".into(), elapsed_secs: 12 };
        assert_eq!(plain.line(&beat, now).as_deref(), Some("⏳ still downloading… (12s)"));
        let done = Event::done("ok");
        assert_eq!(plain.line(&done, now), None);
    }
}
