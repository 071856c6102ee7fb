//! A blob's bytes as a response body, read from disk in [`CHUNK`]-sized `pread`s on the blocking
//! pool (never on the executor) by a task that runs at most [`AHEAD`] chunks ahead of the socket:
//! memory per response is bounded whatever the file's size, and dropping the body (the client
//! went away) drops the task. The task starts at the first read, so a body the accept loop
//! replaces with `sendfile` (`http/sendfile.rs`) never reads a byte.
//!
//! A blob still being downloaded ([`Growing`]) is served as it grows: bytes come from
//! `blobs/<etag>.incomplete` (always a contiguous prefix of the file, see DESIGN §4) as far as it
//! reaches, and once `blobs/<etag>` exists — published after size and sha256 verified — from
//! there. The last byte is only ever read from the published blob, so a client never completes a
//! download the hive did not verify: when the job ends without publishing, the body fails and the
//! client sees a cut-off transfer, never a wrong file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncBufRead, AsyncRead, StreamExt};

use crate::jobs::EventLog;

/// Bytes per disk read. Large reads keep the blocking pool's hops rare; async-h1 copies them to
/// the socket in its own 8 KiB steps.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the socket.
const AHEAD: usize = 2;
/// How often a growing blob is looked at again while no new byte is there.
const POLL: Duration = Duration::from_millis(20);

/// A blob that a job of this hive is still downloading.
#[derive(Debug, Clone)]
pub struct Growing {
    /// `blobs/<etag>.incomplete`.
    pub incomplete: PathBuf,
    /// The job's log: once it ends without a published blob, the body fails.
    pub job: Arc<EventLog>,
}

/// Sends the chunks a [`read_ahead`] task reads.
type Chunks = async_channel::Sender<io::Result<Vec<u8>>>;

/// Bytes `start..end` of the blob at `blob` (of `size` bytes in all).
pub struct BlobBody {
    chunks: Pin<Box<async_channel::Receiver<io::Result<Vec<u8>>>>>,
    current: Vec<u8>,
    offset: usize,
    /// What the reader task will read, until the first read starts it.
    idle: Option<(Source, u64, u64, Chunks)>,
    _reader: Option<smol::Task<()>>,
}

impl BlobBody {
    /// Bytes `start..end` of `blob`, read from the first read on; a [`Growing`] one is followed as
    /// it is written.
    #[must_use]
    pub fn new(blob: PathBuf, growing: Option<Growing>, size: u64, start: u64, end: u64) -> Self {
        let (tx, chunks) = async_channel::bounded(AHEAD);
        let source = Source { blob, growing, size, file: None, published: false, ended_check: false };
        let idle = Some((source, start, end, tx));
        Self { chunks: Box::pin(chunks), current: Vec::new(), offset: 0, idle, _reader: None }
    }
}

impl AsyncBufRead for BlobBody {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if let Some((source, start, end, tx)) = this.idle.take() {
            this._reader = Some(smol::spawn(read_ahead(source, start, end, tx)));
        }
        while this.offset >= this.current.len() {
            match std::task::ready!(this.chunks.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => (this.current, this.offset) = (chunk, 0),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(&[])),
            }
        }
        Poll::Ready(Ok(&this.current[this.offset..]))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.offset = (self.offset + amt).min(self.current.len());
    }
}

impl AsyncRead for BlobBody {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let available = std::task::ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }
}

/// Reads chunk after chunk into `tx` until `end`, an error, or the body is dropped.
async fn read_ahead(mut source: Source, mut pos: u64, end: u64, tx: Chunks) {
    while pos < end {
        let want = usize::try_from(end - pos).unwrap_or(usize::MAX).min(CHUNK);
        let (back, step) = smol::unblock(move || {
            let step = source.step(pos, end, want);
            (source, step)
        })
        .await;
        source = back;
        let chunk = match step {
            Ok(Some(chunk)) => Ok(chunk),
            Err(e) => Err(e),
            // The job ended: one more look (it may have published in between), then give up.
            Ok(None) if source.job_ended() && source.ended_check => Err(source.unfinished()),
            Ok(None) => {
                if source.job_ended() {
                    source.ended_check = true;
                } else {
                    smol::Timer::after(POLL).await;
                }
                continue;
            }
        };
        let failed = chunk.is_err();
        if let Ok(c) = &chunk {
            pos += c.len() as u64;
        }
        if tx.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

/// Where the bytes come from; moved to the blocking pool for each step.
struct Source {
    blob: PathBuf,
    growing: Option<Growing>,
    size: u64,
    file: Option<File>,
    published: bool,
    ended_check: bool,
}

impl Source {
    /// The next chunk at `pos`, or `None` when a growing blob has nothing new yet.
    fn step(&mut self, pos: u64, end: u64, want: usize) -> io::Result<Option<Vec<u8>>> {
        if !self.published {
            self.open()?;
        }
        let Some(file) = &self.file else { return Ok(None) };
        // A partial is read up to the last byte, never including it (see the module docs).
        let limit = if self.published { end } else { end.min(self.size.saturating_sub(1)).min(file.metadata()?.len()) };
        if pos >= limit {
            return if self.published {
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("`{}` ended early", self.blob.display())))
            } else {
                Ok(None)
            };
        }
        let n = usize::try_from(limit - pos).unwrap_or(usize::MAX).min(want);
        let mut buf = vec![0; n];
        file.read_exact_at(&mut buf, pos)?;
        Ok(Some(buf))
    }

    /// Opens the published blob when it is there, else (growing) the partial.
    fn open(&mut self) -> io::Result<()> {
        match crate::cache::open_blob(&self.blob) {
            Ok(f) => {
                self.file = Some(f);
                self.published = true;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let (None, Some(g)) = (&self.file, &self.growing) {
                    self.file = crate::cache::open_blob(&g.incomplete).ok();
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn job_ended(&self) -> bool {
        self.growing.as_ref().is_none_or(|g| g.job.status().is_final())
    }

    fn unfinished(&self) -> io::Error {
        let why = self.growing.as_ref().and_then(|g| g.job.error_message()).unwrap_or_else(|| "it ended".to_owned());
        io::Error::other(format!("the download of `{}` did not finish: {why}", self.blob.display()))
    }
}
