//! A published blob's bytes sent from the page cache to the socket with `sendfile(2)`, not copied
//! through the hive: the mirror's `GET` of a verified blob is the one response that can be
//! gigabytes, and through async-h1 each byte was read into a buffer, then written to the socket in
//! 8 KiB steps (1.23 s of CPU per GiB where nginx spends 0.40 s).
//!
//! How it fits tide: the mirror route answers as before — same status and headers, a
//! [`BlobBody`] as the body, so in-memory tests and any other caller see the bytes — and attaches
//! a [`FileRange`] naming the same bytes. The accept loop (`serve.rs`) takes it off, lets async-h1
//! write the head with an empty body of the same `Content-Length`, then calls [`FileRange::send`]
//! on the connection before it reads the next request.
//!
//! The socket is non-blocking (async-io's): a `sendfile` that finds the socket's buffer full fails
//! with `EAGAIN`, and the task waits for the socket to become writable on the reactor, so no
//! executor thread waits for a slow client. A client that goes away fails the next `sendfile`
//! (`EPIPE`/`ECONNRESET`) and the transfer stops there. Each call moves at most [`STEP`] bytes and
//! is followed by a yield, so one fast client cannot hold an executor thread. What `sendfile`
//! cannot avoid is reading the file: a blob not in the page cache is read from disk inside the
//! call, as nginx's `sendfile on` does (the readahead hint below keeps that to the disk's
//! sequential rate).
//!
//! Where the kernel has no `sendfile` for this file (another OS, a file system without it), the
//! same bytes go out through [`BlobBody`] in 1 MiB writes.

use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;

use futures_lite::{AsyncBufReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::Async;

use crate::mirror::BlobBody;

/// Most bytes one `sendfile` call may move (it returns sooner when the socket's buffer is full).
const STEP: usize = 8 << 20;

/// Bytes `start..end` of the published (verified) blob at `path`, for the accept loop to send.
#[derive(Debug, Clone)]
pub(super) struct FileRange {
    pub(super) path: PathBuf,
    pub(super) start: u64,
    pub(super) end: u64,
}

impl FileRange {
    /// Sends the bytes on `stream`; the number sent. Fails when the blob cannot be opened, ends
    /// early, or the client went away.
    pub(super) async fn send(&self, stream: &TcpStream) -> io::Result<u64> {
        let path = self.path.clone();
        let file = smol::unblock(move || {
            let file = crate::cache::open_blob(&path)?;
            advise_sequential(&file);
            io::Result::Ok(file)
        })
        .await?;
        let socket: Arc<Async<std::net::TcpStream>> = stream.clone().into();
        let mut pos = self.start;
        while pos < self.end {
            let want = usize::try_from(self.end - pos).unwrap_or(usize::MAX).min(STEP);
            match socket.write_with(|s| sendfile(s, &file, &mut pos, want)).await {
                Ok(0) => return Err(self.ended_early()),
                Ok(_) => futures_lite::future::yield_now().await,
                Err(e) if pos == self.start && unsupported(&e) => return self.write(stream).await,
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.start)
    }

    /// The fallback: the bytes through [`BlobBody`] (1 MiB reads on the blocking pool), written
    /// as they come.
    async fn write(&self, stream: &TcpStream) -> io::Result<u64> {
        let mut body = BlobBody::new(self.path.clone(), None, self.end, self.start, self.end);
        let mut out = stream.clone();
        let mut sent = 0;
        loop {
            let chunk = body.fill_buf().await?;
            if chunk.is_empty() {
                break;
            }
            out.write_all(chunk).await?;
            let n = chunk.len();
            body.consume(n);
            sent += n as u64;
        }
        if sent < self.end - self.start {
            return Err(self.ended_early());
        }
        Ok(sent)
    }

    fn ended_early(&self) -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, format!("`{}` ended early", self.path.display()))
    }
}

/// One `sendfile(2)` from `file` at `pos` (advanced by what was sent) to `socket`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn sendfile(socket: &std::net::TcpStream, file: &std::fs::File, pos: &mut u64, want: usize) -> io::Result<usize> {
    rustix::fs::sendfile(socket.as_fd(), file.as_fd(), Some(pos), want).map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sendfile(_: &std::net::TcpStream, _: &std::fs::File, _: &mut u64, _: usize) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Whether `sendfile` is missing here (or for this file) rather than failed.
fn unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    e.kind() == io::ErrorKind::Unsupported
        || Errno::from_io_error(e).is_some_and(|n| [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP].contains(&n))
}

/// Asks the kernel for a larger readahead: the file is read once, from start to end.
fn advise_sequential(file: &std::fs::File) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = rustix::fs::fadvise(file.as_fd(), 0, None, rustix::fs::Advice::Sequential);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = file;
}
