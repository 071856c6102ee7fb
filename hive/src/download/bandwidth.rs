//! Bandwidth caps: the hive's `--max-rate` (shared by every job) and a job's own `max_rate`.
//!
//! Each cap is a token bucket refilled at its rate, holding at most [`BURST`] worth of bytes.
//! A download takes tokens for every chunk it has written and waits (a `smol::Timer`, so a
//! cancel drops it at once) when the bucket runs dry. Over any window of a few seconds the
//! average stays within a few percent of the cap (measured in BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most a bucket holds: a quarter second of its rate.
const BURST: f64 = 0.25;

/// One token bucket.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
    /// Nanoseconds readers were made to wait so far, all together.
    waited: AtomicU64,
}

impl Bucket {
    /// A bucket for `bytes_per_sec`, starting empty (no burst at the start).
    #[must_use]
    pub fn new(bytes_per_sec: u64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let rate = bytes_per_sec.max(1) as f64;
        Self { rate, state: Mutex::new((0.0, Instant::now())), waited: AtomicU64::new(0) }
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
            let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
            self.waited.fetch_add(nanos, Ordering::Relaxed);
            smol::Timer::after(wait).await;
        }
    }
}

/// Every cap in force: the hive's own and each running job's.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    hive: Option<Bucket>,
    jobs: Mutex<HashMap<String, Arc<Bucket>>>,
}

impl Pacer {
    /// The hive's cap (`--max-rate`), shared by every job.
    pub(crate) fn new(hive: Option<u64>) -> Self {
        Self { hive: hive.map(Bucket::new), jobs: Mutex::default() }
    }

    /// Registers job `id`'s own cap until the guard drops.
    pub(crate) fn job(&self, id: &str, bytes_per_sec: u64) -> JobRate<'_> {
        let bucket = Arc::new(Bucket::new(bytes_per_sec));
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned(), bucket);
        JobRate { pacer: self, id: id.to_owned() }
    }

    /// Waits until `n` more bytes of job `id` are within the hive's and the job's caps.
    pub(crate) async fn pace(&self, id: &str, n: usize) {
        if let Some(hive) = &self.hive {
            hive.pace(n).await;
        }
        let job = self.jobs.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned();
        if let Some(job) = job {
            job.pace(n).await;
        }
    }

    /// How long the caps over job `id` (its own and the hive's) made readers wait so far, all
    /// together: a cap that makes anyone wait is one more connections cannot get past.
    pub(crate) fn waited(&self, id: &str) -> Duration {
        let job = self.jobs.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned();
        let nanos =
            [self.hive.as_ref(), job.as_deref()].into_iter().flatten().map(|b| b.waited.load(Ordering::Relaxed));
        Duration::from_nanos(nanos.fold(0, u64::saturating_add))
    }

    /// The slowest rate job `id` may be capped to (the stall detector's floor follows it).
    pub(crate) fn cap(&self, id: &str) -> Option<u64> {
        let job = self.jobs.lock().unwrap_or_else(PoisonError::into_inner).get(id).map(|b| b.rate());
        [job, self.hive.as_ref().map(Bucket::rate)].into_iter().flatten().min()
    }
}

/// A job's cap, removed when the job ends (or is dropped).
pub(crate) struct JobRate<'a> {
    pacer: &'a Pacer,
    id: String,
}

impl Drop for JobRate<'_> {
    fn drop(&mut self) {
        self.pacer.jobs.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
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
