//! Bandwidth caps: the hive's `--max-rate` (shared by every job) and a job's own `max_rate`.
//!
//! Each cap is a token bucket refilled at its rate, holding at most [`BURST`] worth of bytes.
//! A download takes tokens for every chunk it has written and waits (a `smol::Timer`, so a
//! cancel drops it at once) when the bucket runs dry. Over any window of a few seconds the
//! average stays within a few percent of the cap (measured in BENCHMARKS.md).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most a bucket holds: a quarter second of its rate.
const BURST: f64 = 0.25;

/// One token bucket.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A bucket for `bytes_per_sec`, starting empty (no burst at the start).
    #[must_use]
    pub fn new(bytes_per_sec: u64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let rate = bytes_per_sec.max(1) as f64;
        Self { rate, state: Mutex::new((0.0, Instant::now())) }
    }

    /// The cap, bytes per second.
    #[must_use]
    pub fn rate(&self) -> u64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rate = self.rate as u64;
        rate
    }

    /// Takes `n` bytes' worth; how long to wait before going on (zero when there was enough).
    fn take(&self, n: usize) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, last) = *state;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate * BURST);
        #[allow(clippy::cast_precision_loss)]
        let tokens = tokens - n as f64;
        *state = (tokens, now);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.rate)
        }
    }

    /// Waits until `n` more bytes are within the rate.
    pub async fn pace(&self, n: usize) {
        let wait = self.take(n);
        if !wait.is_zero() {
            smol::Timer::after(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_turns_into_waits() {
        let b = Bucket::new(1000);
        let w = b.take(500);
        assert!(w > Duration::from_millis(450) && w <= Duration::from_millis(500), "{w:?}");
        let w = b.take(500);
        assert!(w > Duration::from_millis(950), "{w:?}");
    }
}
