//! One stream: a file's bytes over a single connection, appended chunk by chunk to its
//! `blobs/<etag>.incomplete` (resuming what is there with `Range: bytes=N-`), retrying resets and
//! stalls. Used for small files, files of unknown size, `--max-parts 1`, and servers that ignore
//! `Range`.

use surf::StatusCode;

use super::body::Sink;
use super::meter::Meter;
use super::partial::Partial;
use super::{Fetched, Interrupted, Transfer};
use crate::download::error::{network, DownloadError};
use crate::download::retry::{Attempt, Failed};
use crate::download::wire::header;

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
        self.retry.run(self.ctx, &mut Streaming { t: self, partial, meter: &mut meter }).await?;
        meter.tick(partial.len(), true);
        Ok(())
    }

    async fn attempt(&self, partial: &mut Partial, meter: &mut Meter<'_>) -> Result<(), Interrupted> {
        let (res, file) = (self.res, self.file);
        let offset = partial.len();
        if res.size == Some(offset) && offset > 0 {
            return Ok(());
        }
        let what = format!("downloading `{file}`");
        let mut response = self.open_stream(partial, meter, offset, &what).await?;
        // Never more than declared: the resolve's size, else what this response says the file is.
        let limit = res.size.or_else(|| declared_total(&response, partial.len()));
        let mut sink = StreamSink { partial, meter, limit, file, size: res.size };
        self.read_body(&mut response, &what, &mut sink).await?;
        match res.size {
            Some(size) if partial.len() < size => {
                Err(Interrupted::Retry(network(&what, format!("connection ended at byte {} of {size}", partial.len()))))
            }
            _ => Ok(()),
        }
    }

    /// The GET from `offset`, its status checked (a server that ignores the range restarts the
    /// partial).
    async fn open_stream(
        &self,
        partial: &mut Partial,
        meter: &mut Meter<'_>,
        offset: u64,
        what: &str,
    ) -> Result<surf::Response, Interrupted> {
        let file = self.file;
        let following = self.hub.get_following(&self.res.url, (offset, None), self.retry.stall, what, None);
        let response = following.await.map_err(Interrupted::Retry)?;
        match response.status() {
            StatusCode::PartialContent if offset > 0 => check_content_range(&response, offset, what)?,
            StatusCode::Ok if offset > 0 => {
                self.ctx.narrate(format!("⚠️  the server ignored the Range request; restarting `{file}` from byte 0"));
                partial.restart().await?;
                meter.resumed_from = 0;
            }
            StatusCode::Ok => {}
            StatusCode::RequestedRangeNotSatisfiable => {
                self.ctx.narrate(format!("⚠️  the server refused resuming at byte {offset}; restarting from 0"));
                partial.restart().await?;
                return Err(Interrupted::Retry(network(what, "range not satisfiable")));
            }
            _ => return Err(Interrupted::from_status(self.refusal(&response))),
        }
        Ok(response)
    }
}

/// One attempt of the stream; a failed one keeps every byte received, for the next attempt or
/// download to resume from.
struct Streaming<'a, 'm> {
    t: &'a Transfer<'a>,
    partial: &'a mut Partial,
    meter: &'a mut Meter<'m>,
}

impl Attempt for Streaming<'_, '_> {
    type Output = ();
    type Error = DownloadError;

    async fn attempt(&mut self) -> Result<(), Failed<DownloadError>> {
        match self.t.attempt(self.partial, self.meter).await {
            Ok(()) => Ok(()),
            Err(Interrupted::Fatal(e)) => Err(Failed::Stop(e)),
            Err(Interrupted::Retry(e)) => {
                self.partial.flush().await.map_err(|e| Failed::Stop(e.into()))?;
                Err(Failed::Retry(format!("for `{}` from byte {}", self.t.file, self.partial.len()), e))
            }
        }
    }
}

/// The single stream's body goes to the `.incomplete`, never past the declared size.
struct StreamSink<'a, 'm> {
    partial: &'a mut Partial,
    meter: &'a mut Meter<'m>,
    limit: Option<u64>,
    file: &'a str,
    size: Option<u64>,
}

impl Sink for StreamSink<'_, '_> {
    type Stop = ();
    type Error = Interrupted;

    async fn idle(&mut self) -> Result<(), Interrupted> {
        self.partial.idle();
        Ok(())
    }

    async fn take(&mut self, chunk: &[u8]) -> Result<Option<()>, Interrupted> {
        let partial = &mut *self.partial;
        if let Some(limit) = self.limit.filter(|l| partial.len() + chunk.len() as u64 > *l) {
            // Keep what fits, read no further: the caller deletes the partial.
            let room = usize::try_from(limit.saturating_sub(partial.len())).unwrap_or(0);
            partial.append(&chunk[..room]).await?;
            return Err(Interrupted::Fatal(DownloadError::Oversized { file: self.file.to_owned(), declared: limit }));
        }
        partial.append(chunk).await?;
        self.meter.tick(partial.len(), false);
        Ok(None)
    }

    fn whereabouts(&self) -> String {
        let of = self.size.map(|s| format!(" of {s}")).unwrap_or_default();
        format!(" at byte {}{of}", self.partial.len())
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
