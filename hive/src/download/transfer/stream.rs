//! One stream: a file's bytes over a single connection, appended chunk by chunk to its
//! `blobs/<etag>.incomplete` (resuming what is there with `Range: bytes=N-`), retrying resets and
//! stalls. Used for small files, files of unknown size, `--max-parts 1`, and servers that ignore
//! `Range`.

use futures_lite::{future, AsyncBufReadExt};
use surf::StatusCode;

use super::meter::Meter;
use super::partial::Partial;
use super::{Fetched, Interrupted, Transfer};
use crate::download::error::{network, DownloadError};
use crate::download::hub::header;
use crate::download::retry::StallTimer;
use crate::download::stall::Window;

impl Transfer<'_> {
    /// Fetches the whole file into `.incomplete`, hashing it on the way.
    pub(super) async fn stream(&self) -> Result<Fetched, DownloadError> {
        let path = self.repo.incomplete(&self.res.etag);
        let mut partial =
            Partial::open(self.repo, &path, self.res.size, self.ctx.outstanding.clone(), self.write_batch).await?;
        if let Err(e) = self.stream_into(&mut partial).await {
            if matches!(e, DownloadError::Oversized { .. }) {
                let _ = partial.flush().await;
                drop(partial);
                self.repo.remove_file(&path);
            }
            return Err(e);
        }
        let (size, sha256) = partial.finish().await?;
        Ok(Fetched { path, size, sha256, in_parts: false })
    }

    async fn stream_into(&self, partial: &mut Partial) -> Result<(), DownloadError> {
        let resumed_from = partial.len();
        if resumed_from > 0 {
            self.ctx.narrate(format!("↩️  resuming `{}` from byte {resumed_from}", self.file));
        }
        let mut meter = Meter::new(self.ctx, self.file, self.res.size, resumed_from);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(partial, &mut meter).await {
                Ok(()) => {
                    meter.tick(partial.len(), true);
                    return Ok(());
                }
                Err(Interrupted::Fatal(e)) => return Err(e),
                Err(Interrupted::Retry(e)) => {
                    // Keep every byte received, for the next attempt or download to resume from.
                    partial.flush().await?;
                    let what = format!("for `{}` from byte {}", self.file, partial.len());
                    self.retry.after_failure(self.ctx, attempt, what, e).await?;
                }
            }
        }
    }

    async fn attempt(&self, partial: &mut Partial, meter: &mut Meter<'_>) -> Result<(), Interrupted> {
        let (res, file) = (self.res, self.file);
        let offset = partial.len();
        if res.size == Some(offset) && offset > 0 {
            return Ok(());
        }
        let what = format!("downloading `{file}`");
        let following = self.hub.get_following(&res.url, (offset, None), self.retry.stall, &what, None);
        let mut response = following.await.map_err(Interrupted::Retry)?;
        match response.status() {
            StatusCode::PartialContent if offset > 0 => check_content_range(&response, offset, &what)?,
            StatusCode::Ok if offset > 0 => {
                self.ctx.narrate(format!("⚠️  the server ignored the Range request; restarting `{file}` from byte 0"));
                partial.restart().await?;
                meter.resumed_from = 0;
            }
            StatusCode::Ok => {}
            StatusCode::RequestedRangeNotSatisfiable => {
                self.ctx.narrate(format!("⚠️  the server refused resuming at byte {offset}; restarting from 0"));
                partial.restart().await?;
                return Err(Interrupted::Retry(network(&what, "range not satisfiable")));
            }
            _ => return Err(Interrupted::from_status(self.refusal(&response))),
        }
        // Never more than declared: the resolve's size, else what this response says the file is.
        let limit = res.size.or_else(|| declared_total(&response, partial.len()));
        // Read the body's own chunks in place (no extra buffer, no extra copy).
        let mut body = response.take_body();
        let mut stall = StallTimer::new(self.retry.stall);
        let mut window = Window::new(self.retry.stall, self.pacer.cap(&self.ctx.id));
        loop {
            let ready = future::poll_once(async { body.fill_buf().await.map(<[u8]>::len) }).await;
            if ready.is_none() {
                // Nothing to read right now: let the disk take what is buffered meanwhile.
                partial.idle();
            }
            let read = async {
                match ready {
                    Some(r) => r,
                    None => body.fill_buf().await.map(<[u8]>::len),
                }
            };
            let n = match stall.read(read).await {
                None => return Err(Interrupted::stalled(&what, self.retry.stall)),
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
                return Err(Interrupted::Fatal(DownloadError::Oversized { file: file.to_owned(), declared: limit }));
            }
            partial.append(&chunk[..n]).await?;
            body.consume(n);
            meter.tick(partial.len(), false);
            // Bandwidth caps, then the slow-trickle check (stall.rs).
            self.pacer.pace(&self.ctx.id, n).await;
            window.add(n).map_err(|why| Interrupted::Retry(network(&what, why)))?;
        }
        match res.size {
            Some(size) if partial.len() < size => {
                Err(Interrupted::Retry(network(&what, format!("connection ended at byte {} of {size}", partial.len()))))
            }
            _ => Ok(()),
        }
    }
}

/// The file's whole size as a response declares it: the total of `Content-Range`, else
/// `Content-Length` plus where the response starts.
fn declared_total(res: &surf::Response, offset: u64) -> Option<u64> {
    content_range(res)
        .and_then(|(_, total)| total)
        .or_else(|| Some(offset + header(res, "Content-Length")?.trim().parse::<u64>().ok()?))
}

/// `Content-Range: bytes START-END/TOTAL` as (START, TOTAL if not `*`).
pub(super) fn content_range(res: &surf::Response) -> Option<(u64, Option<u64>)> {
    let range = header(res, "Content-Range")?;
    let (span, total) = range.strip_prefix("bytes ")?.split_once('/')?;
    let start = span.split('-').next()?.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

fn check_content_range(res: &surf::Response, offset: u64, what: &str) -> Result<(), Interrupted> {
    if content_range(res).map(|(start, _)| start) == Some(offset) {
        Ok(())
    } else {
        let range = header(res, "Content-Range").unwrap_or_default();
        Err(Interrupted::Retry(network(what, format!("server sent Content-Range `{range}` for a resume at {offset}"))))
    }
}
