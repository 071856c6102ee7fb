//! Streaming one file's bytes into its `.incomplete`, chunk by chunk, resuming with `Range`
//! and retrying resets and stalls with backoff.

use std::time::{Duration, Instant};

use futures_lite::{future, AsyncBufReadExt};
use rbee_protocol::Event;
use surf::StatusCode;

use super::error::{network, DownloadError};
use super::partial::Partial;
use super::resolve::{header, same_origin, Resolved};
use super::Downloader;
use crate::jobs::JobCtx;

const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Why one attempt ended early.
enum Interrupted {
    Fatal(DownloadError),
    Retry(DownloadError),
}

impl From<crate::cache::CacheError> for Interrupted {
    fn from(e: crate::cache::CacheError) -> Self {
        Self::Fatal(e.into())
    }
}

/// Progress reporting for one file.
struct Meter<'a> {
    ctx: &'a JobCtx,
    file: &'a str,
    total: Option<u64>,
    resumed_from: u64,
    last: Instant,
    last_bytes: u64,
}

impl Meter<'_> {
    fn tick(&mut self, bytes: u64, force: bool) {
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

impl Downloader {
    /// Fetches the bytes of `res` into `partial`, retrying with resume, until complete.
    pub(crate) async fn fetch(
        &self,
        ctx: &JobCtx,
        file: &str,
        res: &Resolved,
        partial: &mut Partial,
    ) -> Result<(), DownloadError> {
        let resumed_from = partial.len();
        if resumed_from > 0 {
            ctx.narrate(format!("↩️  resuming `{file}` from byte {resumed_from}"));
        }
        let mut meter =
            Meter { ctx, file, total: res.size, resumed_from, last: Instant::now(), last_bytes: resumed_from };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(res, partial, &mut meter).await {
                Ok(()) => {
                    meter.tick(partial.len(), true);
                    return Ok(());
                }
                Err(Interrupted::Fatal(e)) => return Err(e),
                Err(Interrupted::Retry(e)) => {
                    // Keep every byte received, for the next attempt or download to resume from.
                    partial.flush().await?;
                    if attempt > self.retries {
                        return Err(e.after_attempts(attempt));
                    }
                    let wait = if let Some(wait) = e.rate_limit_wait() {
                        ctx.narrate(super::ratelimit::narration(wait, attempt, self.retries)); // issue 13
                        wait
                    } else {
                        let wait = self.backoff(attempt);
                        ctx.narrate(format!(
                            "🔁 retry {attempt}/{} for `{file}` in {} ms from byte {}: {e}",
                            self.retries,
                            wait.as_millis(),
                            partial.len()
                        ));
                        wait
                    };
                    smol::Timer::after(wait).await;
                }
            }
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.backoff_base.saturating_mul(1 << attempt.min(6).saturating_sub(1));
        exp.min(Duration::from_secs(10))
    }

    async fn attempt(&self, res: &Resolved, partial: &mut Partial, meter: &mut Meter<'_>) -> Result<(), Interrupted> {
        let offset = partial.len();
        if res.size == Some(offset) && offset > 0 {
            return Ok(());
        }
        let what = format!("downloading `{}`", meter.file);
        // issue 13: a bounded redirect chain (Xet bridges), the token only to the endpoint (xet.rs)
        let mut response = self.get_following(res, offset, &what).await.map_err(Interrupted::Retry)?;
        let status = response.status();
        match status {
            StatusCode::PartialContent if offset > 0 => check_content_range(&response, offset, &what)?,
            StatusCode::Ok if offset > 0 => {
                meter.ctx.narrate(format!(
                    "⚠️  the server ignored the Range request; restarting `{}` from byte 0",
                    meter.file
                ));
                partial.restart().await?;
                meter.resumed_from = 0;
            }
            StatusCode::Ok => {}
            StatusCode::RequestedRangeNotSatisfiable => {
                meter.ctx.narrate(format!("⚠️  the server refused resuming at byte {offset}; restarting from 0"));
                partial.restart().await?;
                return Err(Interrupted::Retry(network(&what, "range not satisfiable")));
            }
            _ => {
                let e = super::xet::refused(res, &response, meter.file)
                    .unwrap_or_else(|| self.status_error(&response, "", "", meter.file));
                return Err(if e.retryable() { Interrupted::Retry(e) } else { Interrupted::Fatal(e) });
            }
        }
        // Never more than declared: the resolve's size, else what this response says the file is.
        let limit = res.size.or_else(|| declared_total(&response, partial.len()));
        // Read the body's own chunks in place (no extra buffer, no extra copy).
        let mut body = response.take_body();
        let mut window = super::stall::Window::new(self.stall, self.cap(&meter.ctx.id)); // issue 13
        loop {
            let ready = future::poll_once(async { body.fill_buf().await.map(<[u8]>::len) }).await;
            if ready.is_none() {
                // Nothing to read right now: let the disk take what is buffered meanwhile.
                partial.idle();
            }
            let read = async {
                match ready {
                    Some(r) => Some(r),
                    None => Some(body.fill_buf().await.map(<[u8]>::len)),
                }
            };
            let stalled = async {
                smol::Timer::after(self.stall).await;
                None
            };
            let n = match future::or(read, stalled).await {
                None => {
                    return Err(Interrupted::Retry(network(
                        &what,
                        format!("no data for {}s (stalled)", self.stall.as_secs()),
                    )))
                }
                Some(Err(e)) => {
                    let at = partial.len();
                    let of = res.size.map(|s| format!(" of {s}")).unwrap_or_default();
                    return Err(Interrupted::Retry(network(&what, format!("connection lost at byte {at}{of}: {e}"))));
                }
                Some(Ok(0)) => break,
                Some(Ok(n)) => n,
            };
            // Buffered already: this returns at once with the same bytes.
            let chunk = body.fill_buf().await.map_err(|e| Interrupted::Retry(network(&what, e)))?;
            if let Some(limit) = limit.filter(|l| partial.len() + n as u64 > *l) {
                // Keep what fits, read no further: the caller deletes the partial.
                let room = usize::try_from(limit.saturating_sub(partial.len())).unwrap_or(0);
                partial.append(&chunk[..room]).await?;
                return Err(Interrupted::Fatal(DownloadError::Oversized {
                    file: meter.file.to_owned(),
                    declared: limit,
                }));
            }
            partial.append(&chunk[..n]).await?;
            body.consume(n);
            meter.tick(partial.len(), false);
            // issue 13: bandwidth caps (bandwidth.rs), then the slow-trickle check (stall.rs)
            self.pace(&meter.ctx.id, n).await;
            window.add(n).map_err(|why| Interrupted::Retry(network(&what, why)))?;
        }
        match res.size {
            Some(size) if partial.len() < size => {
                Err(Interrupted::Retry(network(&what, format!("connection ended at byte {} of {size}", partial.len()))))
            }
            _ => Ok(()),
        }
    }

    /// A request to `url`, carrying HF_TOKEN only when `url` is on the endpoint's origin.
    pub(crate) fn request_to(&self, method: surf::http::Method, url: &surf::Url) -> surf::RequestBuilder {
        if same_origin(url, &self.endpoint) {
            self.request(method, url)
        } else {
            surf::RequestBuilder::new(method, url.clone())
        }
    }
}

/// The file's whole size as a response declares it: the total of `Content-Range`, else
/// `Content-Length` plus where the response starts.
fn declared_total(res: &surf::Response, offset: u64) -> Option<u64> {
    let range = header(res, "Content-Range");
    let total = range.as_deref().and_then(|r| r.rsplit_once('/')).and_then(|(_, t)| t.trim().parse().ok());
    total.or_else(|| Some(offset + header(res, "Content-Length")?.trim().parse::<u64>().ok()?))
}

fn check_content_range(res: &surf::Response, offset: u64, what: &str) -> Result<(), Interrupted> {
    let range = header(res, "Content-Range").unwrap_or_default();
    let start = range.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u64>().ok());
    if start == Some(offset) {
        Ok(())
    } else {
        Err(Interrupted::Retry(network(what, format!("server sent Content-Range `{range}` for a resume at {offset}"))))
    }
}
