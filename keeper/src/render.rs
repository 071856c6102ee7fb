//! How job events reach the user: TTY bars, plain lines, NDJSON, or (quiet) nothing.

mod bar;
pub(crate) mod format;
mod plain;

use std::io::{IsTerminal, Write};
use std::time::Instant;

use rbee_protocol::Event;

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
    Json,
    Quiet,
}

impl Renderer {
    pub(crate) fn new(mode: Mode) -> Self {
        match mode {
            Mode::Bar => Self::Bar(bar::Bars::new()),
            Mode::Plain => Self::Plain(plain::Plain::default()),
            Mode::Json => Self::Json,
            Mode::Quiet => Self::Quiet,
        }
    }

    /// Show `event` (terminal events only appear in JSON mode; the caller reports them).
    pub(crate) fn event(&mut self, event: &Event) {
        match self {
            Self::Bar(bars) => bars.event(event),
            Self::Plain(plain) => {
                if let Some(line) = plain.line(event, Instant::now()) {
                    eprintln!("{line}");
                }
            }
            Self::Json => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", event.to_json()).and_then(|()| out.flush()).ok();
            }
            Self::Quiet => {}
        }
    }

    /// Stop drawing before the final lines.
    pub(crate) fn finish(self) {
        if let Self::Bar(bars) = self {
            bars.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_choice() {
        assert_eq!(Mode::pick(true, true, true), Mode::Json);
        assert_eq!(Mode::pick(false, true, true), Mode::Quiet);
        assert_eq!(Mode::pick(false, false, true), Mode::Bar);
        assert_eq!(Mode::pick(false, false, false), Mode::Plain);
    }
}
