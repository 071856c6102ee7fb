//! `GET /v1/jobs/:id/stream`: one event log, two dialects.
//!
//! - **rbee's text dialect**, for clients that do not ask for `text/event-stream` (rbee's job
//!   client, curl): only `data: <line>` frames, each a human line from [`TextStream`], the last
//!   exactly `[DONE]`, `[CANCELLED]` or `[ERROR] <message>`; then the body ends. `tide::sse` always
//!   writes an `event:` line, which rbee's client would print raw, so this dialect is a plain
//!   streamed body fed by a task the body owns: a client that goes away drops the body, and with
//!   it the task.
//! - **the rich dialect** (`Accept: text/event-stream` or a `Last-Event-ID`), through `tide::sse`:
//!   `id:` on every event (replay after `Last-Event-ID`), narration as plain `data:` text, other
//!   events named with JSON, and after the terminal event the same end marker as plain text.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use futures_lite::{AsyncBufRead, AsyncRead, Stream};
use rbee_protocol::text::TextStream;
use rbee_protocol::{sse, ErrorCode};
use tide::sse::Sender;
use tide::{Endpoint, Request, Response, StatusCode};

use super::{error, State};
use crate::jobs::EventLog;

/// The stream route: 404 for unknown jobs, else the dialect the request asks for.
pub(super) fn endpoint() -> impl Endpoint<State> {
    let rich = Arc::new(super::sse(rich));
    move |req: Request<State>| {
        let log = req.param("id").ok().and_then(|id| req.state().registry.log(id));
        let wants_rich = req.header(sse::LAST_EVENT_ID).is_some()
            || req.header("Accept").is_some_and(|v| v.iter().any(|a| a.as_str().contains(sse::EVENT_STREAM)));
        let rich = rich.clone();
        async move {
            match log {
                None => error(ErrorCode::JobNotFound, "no such job on this hive (it may have expired)"),
                Some(_) if wants_rich => rich.call(req).await,
                Some(log) => Ok(text(log)),
            }
        }
    }
}

async fn rich(req: Request<State>, sender: Sender) -> tide::Result<()> {
    let id = req.param("id")?.to_owned();
    let Some(log) = req.state().registry.log(&id) else { return Ok(()) };
    let mut last: u64 = req.header(sse::LAST_EVENT_ID).and_then(|v| v.last().as_str().trim().parse().ok()).unwrap_or(0);
    loop {
        let (batch, ended) = log.next_after(last).await;
        for (seq, event) in batch {
            sender.send(event.sse_name(), event.sse_data(), Some(&seq.to_string())).await?;
            if let Some(end) = event.end_line() {
                sender.send("", end, None).await?;
            }
            last = seq;
        }
        if ended && log.since(last).0.is_empty() {
            return Ok(());
        }
    }
}

fn text(log: Arc<EventLog>) -> Response {
    let (tx, rx) = async_channel::bounded::<Vec<u8>>(4);
    let task = smol::spawn(async move {
        let mut text = TextStream::default();
        let mut last = 0;
        loop {
            let (batch, ended) = log.next_after(last).await;
            let mut frames = String::new();
            for (seq, event) in batch {
                last = seq;
                for line in text.lines(&event, Instant::now()) {
                    frames.push_str(&sse::text_frame(&line));
                }
            }
            if !frames.is_empty() && tx.send(frames.into_bytes()).await.is_err() {
                return;
            }
            if ended && log.since(last).0.is_empty() {
                return;
            }
        }
    });
    let mut res = Response::new(StatusCode::Ok);
    res.set_content_type(sse::EVENT_STREAM);
    res.insert_header("Cache-Control", "no-cache");
    res.set_body(tide::Body::from_reader(
        ChannelReader { rx: Box::pin(rx), chunk: Vec::new(), pos: 0, _feeder: task },
        None,
    ));
    res
}

/// A body read from a channel of chunks; owns the task that feeds it.
struct ChannelReader {
    rx: Pin<Box<async_channel::Receiver<Vec<u8>>>>,
    chunk: Vec<u8>,
    pos: usize,
    _feeder: smol::Task<()>,
}

impl AsyncBufRead for ChannelReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        while this.pos >= this.chunk.len() {
            match ready!(this.rx.as_mut().poll_next(cx)) {
                Some(chunk) => (this.chunk, this.pos) = (chunk, 0),
                None => return Poll::Ready(Ok(&[])),
            }
        }
        Poll::Ready(Ok(&this.chunk[this.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().pos += amt;
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }
}
