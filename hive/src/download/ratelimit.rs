//! `429 Too Many Requests`: wait as long as the hub says, then go on.
//!
//! The hub says it in `Retry-After: <seconds>` (or an HTTP date), or in the IETF draft header
//! huggingface.co sends, `RateLimit: "resolvers";r=0;t=12` (`r` requests left, `t` seconds until
//! the window resets). The wait is bounded by [`MAX_WAIT`] (a hub asking for an hour gets a
//! minute, then asks again), and the job narrates it: `⏳ rate limited by the hub, retrying in
//! 12 s`. Each wait counts as one of the download's `--retries`.

use std::time::{Duration, SystemTime};

use super::error::DownloadError;
use super::wire::header;

/// The longest wait a 429 gets before the next attempt.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(60);
/// The wait when a 429 names none.
const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// How long `res` (a 429) asks us to wait, bounded by [`MAX_WAIT`].
pub(crate) fn wait_of(res: &surf::Response) -> Duration {
    let retry_after = header(res, "Retry-After").and_then(|v| retry_after(&v));
    let ratelimit = header(res, "RateLimit").and_then(|v| ratelimit_reset(&v));
    retry_after.or(ratelimit).unwrap_or(DEFAULT_WAIT).min(MAX_WAIT)
}

/// `Retry-After`: delay-seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate(value.trim())?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// `t=` of `"resolvers";r=0;t=12` (the first policy that has one).
fn ratelimit_reset(value: &str) -> Option<Duration> {
    value
        .split([';', ','])
        .filter_map(|p| p.trim().strip_prefix("t="))
        .find_map(|t| t.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form servers send today.
fn httpdate(value: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts[..] else { return None };
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == month)? as u64
        + 1;
    let (day, year): (u64, u64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<u64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else { return None };
    // Days from 1970-01-01 (civil-from-days inverse, Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + s))
}

/// The error a 429 becomes: retryable, carrying its wait.
pub(crate) fn error(res: &surf::Response, what: String) -> DownloadError {
    DownloadError::RateLimited { what, wait: wait_of(res), retried: String::new() }
}

/// The narration of a rate-limit wait.
pub(crate) fn narration(wait: Duration, attempt: u32, retries: u32) -> String {
    let secs = wait.as_secs_f64();
    let secs = if wait.subsec_millis() == 0 { format!("{}", wait.as_secs()) } else { format!("{secs:.1}") };
    format!("⏳ rate limited by the hub, retrying in {secs} s ({attempt}/{retries})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(retry_after("12"), Some(Duration::from_secs(12)));
        assert_eq!(retry_after("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(
            httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(ratelimit_reset(r#""resolvers";r=0;t=12"#), Some(Duration::from_secs(12)));
        assert_eq!(ratelimit_reset(r#""api";r=5"#), None);
        assert_eq!(narration(Duration::from_secs(12), 1, 5), "⏳ rate limited by the hub, retrying in 12 s (1/5)");
    }
}
