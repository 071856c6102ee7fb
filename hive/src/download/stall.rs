//! When a connection counts as stalled. Two ways (issue 13):
//!
//! - **silent**: no byte for `--stall-secs` (`retry::StallTimer`);
//! - **trickling**: bytes keep coming, but fewer than [`MIN_RATE`] bytes/s on average over a
//!   whole `--stall-secs` window (a CDN edge sending 1 byte/s would otherwise hold a download
//!   forever). The floor is lowered to a quarter of a bandwidth cap below it, so a download the
//!   hive itself slows is never taken for a stalled one.
//!
//! Either way the attempt ends and the download resumes from its last byte on a new
//! connection, counted as one of `--retries` — as curl's `--speed-limit`/`--speed-time`.

use std::time::{Duration, Instant};

/// The least average rate over a stall window, bytes per second.
pub(crate) const MIN_RATE: u64 = 1024;

/// Bytes received in the current window of one attempt.
pub(crate) struct Window {
    length: Duration,
    floor: u64,
    started: Instant,
    bytes: u64,
}

impl Window {
    /// A window of `length` (the stall time); `cap` is the download's bandwidth cap, if any.
    pub(crate) fn new(length: Duration, cap: Option<u64>) -> Self {
        let floor = cap.map_or(MIN_RATE, |c| MIN_RATE.min(c / 4));
        Self { length, floor, started: Instant::now(), bytes: 0 }
    }

    /// Counts `n` bytes; an error when a whole window went by below the floor.
    pub(crate) fn add(&mut self, n: usize) -> Result<(), String> {
        self.bytes += n as u64;
        let elapsed = self.started.elapsed();
        if elapsed < self.length {
            return Ok(());
        }
        let need = (self.floor as f64 * elapsed.as_secs_f64()) as u64;
        if self.bytes < need {
            return Err(format!(
                "stalled: only {} bytes in {:.0} s (below {} B/s)",
                self.bytes,
                elapsed.as_secs_f64(),
                self.floor
            ));
        }
        (self.started, self.bytes) = (Instant::now(), 0);
        Ok(())
    }
}
