//! Progress of one file: a `progress` event at most every [`PROGRESS_EVERY`], bytes being the
//! sum over every part (and what an earlier attempt left).

use std::time::{Duration, Instant};

use rbee_protocol::Event;

use crate::jobs::JobCtx;

/// Least time between two progress events of a file.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Progress reporting for one file.
pub(crate) struct Meter<'a> {
    ctx: &'a JobCtx,
    file: &'a str,
    total: Option<u64>,
    /// Bytes already there when this download started.
    pub(crate) resumed_from: u64,
    last: Instant,
    last_bytes: u64,
}

impl<'a> Meter<'a> {
    /// A meter starting at `resumed_from` bytes.
    pub(crate) fn new(ctx: &'a JobCtx, file: &'a str, total: Option<u64>, resumed_from: u64) -> Self {
        Self { ctx, file, total, resumed_from, last: Instant::now(), last_bytes: resumed_from }
    }

    /// Reports `bytes` (everything received so far), unless the last report is too recent.
    pub(crate) fn tick(&mut self, bytes: u64, force: bool) {
        let dt = self.last.elapsed();
        if !force && dt < PROGRESS_EVERY {
            return;
        }
        let rate = bytes.saturating_sub(self.last_bytes) as f64 / dt.as_secs_f64().max(1e-3);
        self.last = Instant::now();
        self.last_bytes = bytes;
        let (file, total, resumed_from) = (self.file.to_owned(), self.total, self.resumed_from);
        self.ctx.log.push(Event::Progress { file, bytes, total, rate, resumed_from });
    }
}
