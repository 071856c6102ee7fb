//! The one body-read loop of a transfer, shared by a part's request and the single stream:
//! poll the body → while it is quiet let the disk take what is buffered → wait for bytes no
//! longer than the stall limit → hand the body's own chunk (read in place, no extra copy) to
//! the [`Sink`] → wait for the bandwidth caps → the slow-trickle window ([`Window`]).

use futures_lite::{future, AsyncBufReadExt};

use super::{Interrupted, Transfer};
use crate::download::error::network;
use crate::download::retry::StallTimer;
use crate::download::stall::Window;

/// Where a body's bytes go.
pub(super) trait Sink {
    /// What ends the read early, with a value.
    type Stop;
    type Error: From<Interrupted>;
    /// Nothing to read right now: the disk may take what is buffered meanwhile.
    async fn idle(&mut self) -> Result<(), Self::Error>;
    /// Takes `chunk`, just read; `Some` ends the read after it.
    async fn take(&mut self, chunk: &[u8]) -> Result<Option<Self::Stop>, Self::Error>;
    /// Where a lost connection left off, for its error (` at byte N`).
    fn whereabouts(&self) -> String;
}

impl Transfer<'_> {
    /// Reads `response`'s body into `sink` until it ends (`None`) or the sink stops it.
    pub(super) async fn read_body<S: Sink>(
        &self,
        response: &mut surf::Response,
        what: &str,
        sink: &mut S,
    ) -> Result<Option<S::Stop>, S::Error> {
        let mut body = response.take_body();
        let limit = self.retry.stall;
        let mut stall = StallTimer::new(limit);
        let mut window = Window::new(limit, self.pacer.cap(&self.ctx.id));
        let retry = |why: String| Interrupted::Retry(network(what, why));
        loop {
            let ready = future::poll_once(async { body.fill_buf().await.map(<[u8]>::len) }).await;
            if ready.is_none() {
                sink.idle().await?;
            }
            let read = async {
                match ready {
                    Some(r) => r,
                    None => body.fill_buf().await.map(<[u8]>::len),
                }
            };
            let n = match stall.read(read).await {
                None => return Err(Interrupted::stalled(what, limit).into()),
                Some(Err(e)) => return Err(retry(format!("connection lost{}: {e}", sink.whereabouts())).into()),
                Some(Ok(0)) => return Ok(None),
                Some(Ok(n)) => n,
            };
            // Buffered already: this returns at once with the same bytes.
            let chunk = body.fill_buf().await.map_err(|e| retry(e.to_string()))?;
            let stop = sink.take(&chunk[..n]).await?;
            body.consume(n);
            // Bandwidth caps, then the slow-trickle check (stall.rs).
            self.pacer.pace(&self.ctx.id, n).await;
            window.add(n).map_err(retry)?;
            if stop.is_some() {
                return Ok(stop);
            }
        }
    }
}
