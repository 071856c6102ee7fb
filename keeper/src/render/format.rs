//! Human formatting of sizes, rates and the plain progress / heartbeat lines.

const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/// `512 B`, `1.0 KiB`, `12.0 MiB`.
pub(crate) fn bytes(n: u64) -> String {
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

/// `8.1 MiB/s`.
pub(crate) fn rate(bytes_per_sec: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = bytes_per_sec.max(0.0).round() as u64;
    format!("{}/s", bytes(whole))
}

/// `4.7%` of `total`, when the total is known and non-zero.
pub(crate) fn percent(done: u64, total: Option<u64>) -> Option<String> {
    let total = total.filter(|&t| t > 0)?;
    #[allow(clippy::cast_precision_loss)]
    let pct = done as f64 * 100.0 / total as f64;
    Some(format!("{pct:.1}%"))
}

/// `⬇️  model.gguf 12.0 MiB / 256.0 MiB (4.7%) 8.1 MiB/s`.
pub(crate) fn progress_line(file: &str, done: u64, total: Option<u64>, bytes_per_sec: f64) -> String {
    let amount = match (total, percent(done, total)) {
        (Some(t), Some(p)) => format!("{} / {} ({p})", bytes(done), bytes(t)),
        _ => bytes(done),
    };
    format!("⬇️  {file} {amount} {}", rate(bytes_per_sec))
}

/// `⏳ still downloading… (12s)` (once, even when the hive's message brings its own `⏳`).
pub(crate) fn heartbeat_line(message: &str, elapsed_secs: u64) -> String {
    let message = message.trim_start_matches('⏳').trim_start();
    format!("⏳ {message} ({elapsed_secs}s)")
}

/// Time to move `left` bytes at `bytes_per_sec`: `42s`, `3m 05s`, `2h 07m`; nothing at rate 0.
pub(crate) fn eta(left: u64, bytes_per_sec: f64) -> Option<String> {
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
pub(crate) fn resumed(from: u64) -> Option<String> {
    (from > 0).then(|| format!("resumed from {}", bytes(from)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            progress_line("model.gguf", 12 * mib, Some(256 * mib), 8.1 * 1024.0 * 1024.0),
            "⬇️  model.gguf 12.0 MiB / 256.0 MiB (4.7%) 8.1 MiB/s"
        );
        assert_eq!(progress_line("a", 10, None, 0.0), "⬇️  a 10 B 0 B/s");
        assert_eq!(progress_line("a", 0, Some(0), 0.0), "⬇️  a 0 B 0 B/s");
        assert_eq!(heartbeat_line("still downloading…", 12), "⏳ still downloading… (12s)");
        assert_eq!(heartbeat_line("⏳ still downloading…", 1), "⏳ still downloading… (1s)");
        assert_eq!(resumed(0), None);
        assert_eq!(eta(100, 0.0), None);
        assert_eq!(eta(100, 10.0).as_deref(), Some("10s"));
        assert_eq!(eta(185, 1.0).as_deref(), Some("3m 05s"));
        assert_eq!(eta(7620, 1.0).as_deref(), Some("2h 07m"));
        assert_eq!(resumed(2048).as_deref(), Some("resumed from 2.0 KiB"));
    }
}
