//! Human text: sizes, rates, the progress / heartbeat lines, escaping, and rbee's text dialect
//! ([`TextStream`]: what a client that reads only `data:` lines is shown, ending in exactly one end
//! marker). Both the hive (rbee dialect) and the keeper (plain output) print through here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::{CachedFile, CachedRepo, Event, ModelListing, RemoveReport};

mod sanitize;
pub use sanitize::{defuse_markers, holds_marker, is_unsafe, json, sanitize, strip_sgr, to_json, Narration};

const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/// `512 B`, `1.0 KiB`, `12.0 MiB`.
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A rate as `--max-rate` takes it: bytes per second, with an optional binary suffix as curl's
/// `--limit-rate` (`K` = 1024, `M` = 1024², `G` = 1024³; a trailing `B`, `iB` or `/s` is allowed):
/// `20M`, `512K`, `1.5MiB/s`, `1000`.
///
/// ```
/// assert_eq!(rbee_protocol::text::parse_rate("20M"), Ok(20 << 20));
/// assert_eq!(rbee_protocol::text::parse_rate("1.5KiB/s"), Ok(1536));
/// ```
///
/// # Errors
/// When it is no positive number with a known suffix.
pub fn parse_rate(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let v = v.strip_suffix("/s").unwrap_or(v);
    let v = v.strip_suffix("iB").or_else(|| v.strip_suffix('B')).unwrap_or(v);
    let (number, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_uppercase()),
        _ => (v, ' '),
    };
    let scale: u64 = match unit {
        ' ' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => return Err(format!("`{value}`: unknown unit `{unit}` (use K, M or G, e.g. 20M)")),
    };
    let n: f64 = number.trim().parse().map_err(|_| format!("`{value}` is not a rate (e.g. 20M, 512K, 1000)"))?;
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bytes = (n * scale as f64).round() as u64;
    if !n.is_finite() || bytes == 0 {
        return Err(format!("`{value}`: a rate must be at least 1 byte per second"));
    }
    Ok(bytes)
}

/// `8.1 MiB/s`.
pub fn rate(bytes_per_sec: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = bytes_per_sec.max(0.0).round() as u64;
    format!("{}/s", bytes(whole))
}

/// `4.7%` of `total`, when the total is known and non-zero.
pub fn percent(done: u64, total: Option<u64>) -> Option<String> {
    let total = total.filter(|&t| t > 0)?;
    #[allow(clippy::cast_precision_loss)]
    let pct = done as f64 * 100.0 / total as f64;
    Some(format!("{pct:.1}%"))
}

/// `⏳ model.gguf 45.8 MiB / 256.0 MiB (18%) · 8.0 MiB/s · ETA 27s`.
pub fn progress_line(file: &str, done: u64, total: Option<u64>, bytes_per_sec: f64) -> String {
    let mut line = format!("⏳ {} {}", one_line(file), bytes(done));
    if let Some(t) = total.filter(|&t| t > 0) {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let pct = (done as f64 * 100.0 / t as f64).round() as u64;
        line.push_str(&format!(" / {} ({pct}%)", bytes(t)));
    }
    line.push_str(&format!(" · {}", rate(bytes_per_sec)));
    if let Some(eta) = total.and_then(|t| eta(t.saturating_sub(done), bytes_per_sec)).filter(|_| total > Some(done)) {
        line.push_str(&format!(" · ETA {eta}"));
    }
    line
}

/// `⏳ still downloading… (12s)` (once, even when the hive's message brings its own `⏳`).
pub fn heartbeat_line(message: &str, elapsed_secs: u64) -> String {
    let message = message.trim_start_matches('⏳').trim_start();
    format!("⏳ {message} ({elapsed_secs}s)")
}

/// Time to move `left` bytes at `bytes_per_sec`: `42s`, `3m 05s`, `2h 07m`; nothing at rate 0.
pub fn eta(left: u64, bytes_per_sec: f64) -> Option<String> {
    if bytes_per_sec < 1.0 {
        return None;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = (left as f64 / bytes_per_sec).ceil() as u64;
    Some(match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    })
}

/// `resumed from 12.0 MiB`, or nothing for a fresh download.
pub fn resumed(from: u64) -> Option<String> {
    (from > 0).then(|| format!("resumed from {}", bytes(from)))
}

/// `s` on one line, safe to print and to send as one SSE `data:` line: [`sanitize`]d (SGR
/// stripped; control, bidi and zero-width characters and newlines written as `\\u{…}`).
#[must_use]
pub fn one_line(s: &str) -> String {
    sanitize(s).into_owned()
}

/// A narration as one safe stream line: trimmed, [`one_line`], and with every end-marker text in
/// it defused ([`defuse_markers`]): rbee's clients end a stream on a line that *contains*
/// `[DONE]`, `[CANCELLED]` or `[ERROR]`, and only the terminal event may end one.
#[must_use]
pub fn safe_line(s: &str) -> String {
    defuse_markers(&one_line(s.trim())).into_owned()
}

/// The listing as lines: one per repo, an indented one per file, and the cache directory.
#[must_use]
pub fn listing_lines(listing: &ModelListing) -> Vec<String> {
    if listing.repos.is_empty() {
        return vec![format!("no models cached in {}", one_line(&listing.cache_dir))];
    }
    let width = listing.repos.iter().flat_map(|r| &r.files).map(|f| one_line(&f.file).chars().count()).max();
    let mut out: Vec<String> = listing.repos.iter().flat_map(|r| repo_lines(r, width)).collect();
    out.push(format!("cache: {}", one_line(&listing.cache_dir)));
    out
}

/// One repo as lines: `📦 org/m  3.0 MiB`, then `   file  size  state` with names padded to `width`
/// (by default, to the longest of this repo's).
#[must_use]
pub fn repo_lines(repo: &CachedRepo, width: Option<usize>) -> Vec<String> {
    let width =
        width.unwrap_or_else(|| repo.files.iter().map(|f| one_line(&f.file).chars().count()).max().unwrap_or(0));
    let mut out = vec![format!("📦 {}  {}", one_line(&repo.repo), bytes(repo.size))];
    for file in &repo.files {
        let state = file_state(repo, file);
        out.push(format!("   {:<width$}  {:>10}  {state}", one_line(&file.file), bytes(file.size)));
    }
    out
}

/// `main (0123abc)` for finished files, `partial 47.0%` for unfinished ones.
fn file_state(repo: &CachedRepo, file: &CachedFile) -> String {
    if file.partial {
        return match file.partial_percent {
            Some(pct) => format!("partial {pct:.1}%"),
            None => "partial".to_owned(),
        };
    }
    let label = |commit: &String| {
        let short: String = commit.chars().take(7).collect();
        let names: Vec<_> = repo.refs.iter().filter(|(_, c)| *c == commit).map(|(n, _)| n.as_str()).collect();
        if names.is_empty() {
            short
        } else {
            format!("{} ({short})", one_line(&names.join(", ")))
        }
    };
    file.revisions.iter().map(label).collect::<Vec<_>>().join(", ")
}

fn plural(n: u64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// `🗑️  removed org/m: 1 link, 1 blob, 0 partials (2.0 MiB freed)`.
#[must_use]
pub fn removal_line(what: &str, r: &RemoveReport) -> String {
    let (links, blobs, partials) = (plural(r.links, "link"), plural(r.blobs, "blob"), plural(r.partials, "partial"));
    format!("🗑️  removed {}: {links}, {blobs}, {partials} ({} freed)", one_line(what), bytes(r.bytes))
}

/// Least time between two progress lines of one file in the text dialect.
pub const TEXT_PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// rbee's text dialect for one subscriber: each event as the human lines it shows (progress at
/// most every [`TEXT_PROGRESS_EVERY`] per file, plus each file's first and last), a terminal event
/// as its summary lines and then exactly one end marker. No line is empty, and no line but the
/// last holds an end-marker text (one inside a narration is defused).
#[derive(Debug)]
pub struct TextStream {
    every: Duration,
    last_progress: HashMap<String, Instant>,
}

impl Default for TextStream {
    fn default() -> Self {
        Self::every(TEXT_PROGRESS_EVERY)
    }
}

impl TextStream {
    /// Progress at most every `every` per file.
    #[must_use]
    pub fn every(every: Duration) -> Self {
        Self { every, last_progress: HashMap::new() }
    }

    /// The lines `event`, seen at `now`, shows.
    pub fn lines(&mut self, event: &Event, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |line: String| {
            let line = safe_line(&line);
            if !line.is_empty() {
                out.push(line);
            }
        };
        match event {
            Event::Narration { message } | Event::Heartbeat { message, .. } => push(message.clone()),
            Event::Progress { file, bytes, total, rate, .. } => {
                if self.due(file, now, total.is_some_and(|t| *bytes >= t)) {
                    push(progress_line(file, *bytes, *total, *rate));
                }
            }
            Event::Done { message, lines, .. } => {
                push(message.clone());
                lines.iter().for_each(|l| push(l.clone()));
            }
            Event::Cancelled { message } => push(message.clone()),
            Event::Error { .. } | Event::Data { .. } => {}
        }
        out.extend(event.end_line());
        out
    }

    /// Whether a progress line of `file` may be shown now (always the first and the last).
    pub fn due(&mut self, file: &str, now: Instant, finished: bool) -> bool {
        let due = match self.last_progress.get(file) {
            None => true,
            Some(last) => finished || now.duration_since(*last) >= self.every,
        };
        if due {
            self.last_progress.insert(file.to_owned(), now);
        }
        due
    }
}

/// The hive narrates each retry as `🔁 retry 2/5 for `f` in 4000 ms from byte N: <reason>` (or
/// `… resolving `f` in 500 ms: <reason>`); a live line shows it as `🔁 retry 2/5 in 4 s: <reason>`.
/// `None` for any other line.
#[must_use]
pub fn retry_state(narration: &str) -> Option<String> {
    let rest = narration.trim().strip_prefix("🔁 retry ")?;
    let (count, rest) = rest.split_once(' ')?;
    let (_, after_in) = rest.split_once(" in ")?;
    let (ms, after_ms) = after_in.split_once(" ms")?;
    let ms: u64 = ms.trim().parse().ok()?;
    let reason = after_ms.split_once(": ").map_or("", |(_, r)| r.trim());
    let wait = if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", Duration::from_millis(ms).as_secs_f64())
    };
    let reason = if reason.is_empty() { String::new() } else { format!(": {}", one_line(reason)) };
    Some(format!("🔁 retry {count} in {wait}{reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_lines_become_a_live_state() {
        let fetch = "🔁 retry 2/5 for `m.gguf` in 4000 ms from byte 12: network error: connection reset";
        assert_eq!(retry_state(fetch).as_deref(), Some("🔁 retry 2/5 in 4 s: network error: connection reset"));
        let resolve = "🔁 retry 1/5 resolving `m.gguf` in 500 ms: the hub answered HTTP 503";
        assert_eq!(retry_state(resolve).as_deref(), Some("🔁 retry 1/5 in 0.5 s: the hub answered HTTP 503"));
        assert_eq!(retry_state("📥 Downloading x"), None);
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("20M"), Ok(20 << 20));
        assert_eq!(parse_rate("20MB/s"), Ok(20 << 20));
        assert_eq!(parse_rate("512k"), Ok(512 << 10));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        for bad in ["", "0", "x", "20Q", "-5", "0.1"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(12 * 1024 * 1024), "12.0 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(rate(8.1 * 1024.0 * 1024.0), "8.1 MiB/s");
        assert_eq!(rate(-1.0), "0 B/s");
    }

    #[test]
    fn lines() {
        let mib = 1024 * 1024;
        assert_eq!(
            progress_line("model.gguf", 45 * mib + 800 * 1024, Some(256 * mib), 8.0 * 1024.0 * 1024.0),
            "⏳ model.gguf 45.8 MiB / 256.0 MiB (18%) · 8.0 MiB/s · ETA 27s"
        );
        assert_eq!(progress_line("a", 10, None, 0.0), "⏳ a 10 B · 0 B/s");
        assert_eq!(progress_line("a", 0, Some(0), 0.0), "⏳ a 0 B · 0 B/s");
        assert_eq!(progress_line("a", 10, Some(10), 5.0), "⏳ a 10 B / 10 B (100%) · 5 B/s");
        assert_eq!(heartbeat_line("still downloading…", 12), "⏳ still downloading… (12s)");
        assert_eq!(heartbeat_line("⏳ still downloading…", 1), "⏳ still downloading… (1s)");
        assert_eq!(resumed(0), None);
        assert_eq!(eta(100, 0.0), None);
        assert_eq!(eta(100, 10.0).as_deref(), Some("10s"));
        assert_eq!(eta(185, 1.0).as_deref(), Some("3m 05s"));
        assert_eq!(eta(7620, 1.0).as_deref(), Some("2h 07m"));
        assert_eq!(resumed(2048).as_deref(), Some("resumed from 2.0 KiB"));
    }

    #[test]
    fn escapes() {
        assert_eq!(one_line("a\nb\u{202e}c\td"), "a\\u{a}b\\u{202e}c\\u{9}d");
        assert_eq!(one_line("plain ünïcode ✓"), "plain ünïcode ✓");
    }

    #[test]
    fn text_dialect_ends_with_one_marker() {
        let mut t = TextStream::default();
        let now = Instant::now();
        assert_eq!(t.lines(&Event::narration("📥 hi"), now), ["📥 hi"]);
        assert_eq!(t.lines(&Event::narration("  "), now), Vec::<String>::new());
        assert_eq!(t.lines(&Event::narration("[DONE]"), now), ["\\u{5b}DONE]"]);
        assert_eq!(t.lines(&Event::narration("[ERROR] x"), now), ["\\u{5b}ERROR] x"]);
        assert_eq!(t.lines(&Event::narration("📥 x[DONE].gguf"), now), ["📥 x\\u{5b}DONE].gguf"]);
        let p = |bytes| Event::Progress { file: "f".into(), bytes, total: Some(10), rate: 1.0, resumed_from: 0 };
        assert_eq!(t.lines(&p(1), now).len(), 1, "first progress line shows");
        assert!(t.lines(&p(2), now + Duration::from_secs(1)).is_empty(), "throttled");
        assert_eq!(t.lines(&p(3), now + Duration::from_secs(2)).len(), 1);
        assert_eq!(t.lines(&p(10), now + Duration::from_secs(2)).len(), 1, "the last always shows");
        let done = Event::Done { message: "ok".into(), path: None, result: None, lines: vec!["a".into()] };
        assert_eq!(t.lines(&done, now), ["ok", "a", "[DONE]"]);
        assert_eq!(t.lines(&Event::Error { message: "boom\nbad".into() }, now), ["[ERROR] boom\\u{a}bad"]);
        assert_eq!(t.lines(&Event::Cancelled { message: "🛑 stop".into() }, now), ["🛑 stop", "[CANCELLED]"]);
    }

    fn file(name: &str, size: u64, partial: Option<f64>) -> CachedFile {
        let revisions = if partial.is_some() { vec![] } else { vec!["0123456789abcdef".into()] };
        CachedFile { file: name.into(), size, revisions, partial_percent: partial, partial: partial.is_some() }
    }

    #[test]
    fn listing_shows_refs_and_partials() {
        let repo = CachedRepo {
            repo: "org/m".into(),
            size: 3 << 20,
            refs: [("main".to_owned(), "0123456789abcdef".to_owned())].into(),
            files: vec![file("model.gguf", 2 << 20, None), file("b\u{202e}.gguf", 1 << 20, Some(47.0))],
        };
        let listing = ModelListing { cache_dir: "/c".into(), repos: vec![repo] };
        let lines = listing_lines(&listing);
        assert_eq!(lines[0], "📦 org/m  3.0 MiB");
        assert_eq!(lines[1], "   model.gguf         2.0 MiB  main (0123456)");
        assert_eq!(lines[2], "   b\\u{202e}.gguf     1.0 MiB  partial 47.0%");
        assert_eq!(lines[3], "cache: /c");
        assert_eq!(listing_lines(&ModelListing { cache_dir: "/c".into(), repos: vec![] }), ["no models cached in /c"]);
    }

    #[test]
    fn removal_counts() {
        let r = RemoveReport { links: 1, blobs: 2, partials: 0, bytes: 2 << 20 };
        assert_eq!(removal_line("org/m", &r), "🗑️  removed org/m: 1 link, 2 blobs, 0 partials (2.0 MiB freed)");
    }
}
