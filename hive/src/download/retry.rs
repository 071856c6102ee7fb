//! The one retry policy of a download, and its timeouts: how often a failed step (a resolve, a
//! stream, one part) is tried again, how long it waits in between, and how long a silent
//! connection is given before it counts as failed. Every retry loop of `download/` asks here.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::error::DownloadError;
use crate::jobs::JobCtx;

/// Longest wait for the hub's answer to a HEAD or a listing.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Retries, backoff and the stall timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// First retry delay (doubles each time, at most [`MAX_BACKOFF`]).
    pub(crate) backoff_base: Duration,
    /// Longest wait for a byte (or a response head) before an attempt counts as failed.
    pub(crate) stall: Duration,
}

impl Retry {
    /// The delay before retry number `attempt` (from 1).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.backoff_base.saturating_mul(1 << attempt.min(6).saturating_sub(1));
        exp.min(MAX_BACKOFF)
    }

    /// After `attempt` failed with `e`: `Err` (the final error) when it may not be retried or
    /// retries are used up; else narrates `🔁 retry … {what}` and waits the backoff.
    pub(crate) async fn after_failure(
        &self,
        ctx: &JobCtx,
        attempt: u32,
        what: impl std::fmt::Display,
        e: DownloadError,
    ) -> Result<(), DownloadError> {
        if !e.retryable() {
            return Err(e);
        }
        // A name that does not resolve is asked about once more, not `retries` times: it will not
        // resolve soon, and the cache may answer instead (offline.rs).
        let unresolvable = super::offline::unresolvable(&e);
        if attempt > self.retries || (attempt > 1 && unresolvable) {
            return Err(e.after_attempts(attempt));
        }
        let retries = if unresolvable { self.retries.min(1) } else { self.retries };
        // A 429 waits as long as the hub says (ratelimit.rs); anything else backs off.
        let wait = if let Some(wait) = e.rate_limit_wait() {
            ctx.narrate(super::ratelimit::narration(wait, attempt, self.retries));
            wait
        } else {
            let wait = self.backoff(attempt);
            ctx.narrate(format!("🔁 retry {attempt}/{retries} {what} in {} ms: {e}", wait.as_millis()));
            wait
        };
        smol::Timer::after(wait).await;
        Ok(())
    }
}

/// How one attempt of a step failed.
pub(crate) enum Failed<E> {
    /// Not to be tried again.
    Stop(E),
    /// To be tried again while the policy allows: what is retried (narrated), and why.
    Retry(String, DownloadError),
}

/// One step of a download that [`Retry::run`] tries again after a failure.
pub(crate) trait Attempt {
    type Output;
    type Error: From<DownloadError>;
    /// One try.
    fn attempt(&mut self) -> impl Future<Output = Result<Self::Output, Failed<Self::Error>>> + Send;
}

/// A closure as an [`Attempt`]: one whose futures borrow nothing from it.
pub(crate) struct Step<F>(pub(crate) F);

impl<F, Fut, T, E> Attempt for Step<F>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failed<E>>> + Send,
    E: From<DownloadError>,
{
    type Output = T;
    type Error = E;
    fn attempt(&mut self) -> impl Future<Output = Result<T, Failed<E>>> + Send {
        (self.0)()
    }
}

impl Retry {
    /// Runs `step` until it succeeds, stops, or its failure may not be retried or retries are
    /// used up ([`Retry::after_failure`]): the one retry loop of a download.
    pub(crate) async fn run<A: Attempt>(&self, ctx: &JobCtx, step: &mut A) -> Result<A::Output, A::Error> {
        let mut n = 0;
        loop {
            n += 1;
            match step.attempt().await {
                Ok(v) => return Ok(v),
                Err(Failed::Stop(e)) => return Err(e),
                Err(Failed::Retry(what, e)) => self.after_failure(ctx, n, what, e).await?,
            }
        }
    }
}

/// Runs `fut`, failing with "no answer within …" after `limit`.
pub(crate) async fn with_timeout<T>(fut: impl Future<Output = surf::Result<T>>, limit: Duration) -> Result<T, String> {
    let timeout = async {
        smol::Timer::after(limit).await;
        Err(format!("no answer within {}s", limit.as_secs()))
    };
    future::or(async { fut.await.map_err(|e| e.to_string()) }, timeout).await
}

/// The stall limit of a body's reads: `None` for a read that waited `limit` without a byte.
///
/// One reactor timer serves every read of an attempt, re-armed only when it fires (at most once per
/// `limit`): a timer registered per read wakes the reactor thread each time a fast download waits
/// for its next chunk, about a tenth of its CPU.
pub(crate) struct StallTimer {
    timer: smol::Timer,
    limit: Duration,
}

impl StallTimer {
    pub(crate) fn new(limit: Duration) -> Self {
        Self { timer: smol::Timer::after(limit), limit }
    }

    /// Runs `read`, or gives `None` when it has not finished after the limit.
    pub(crate) async fn read<T>(&mut self, read: impl Future<Output = T>) -> Option<T> {
        let deadline = Instant::now() + self.limit;
        let timer = &mut self.timer;
        let stalled = async {
            loop {
                (&mut *timer).await;
                if Instant::now() >= deadline {
                    return None;
                }
                timer.set_at(deadline);
            }
        };
        future::or(async { Some(read.await) }, stalled).await
    }
}
