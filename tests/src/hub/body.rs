//! Serving a byte range of a generated file: `Range` parsing and the paced, fault-aware reader
//! the hub uses for non-LFS bodies (the CDN writes its bodies itself, see `cdn.rs`).
//!
//! Through tide a cut fault can only end the body with an error, so on the hub `ResetAfter` and
//! `TruncateAfter` both close the connection cleanly after `n` bytes, and `StallAfter` holds it
//! until the process ends. The CDN implements all three exactly.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_io::Timer;
use futures_lite::AsyncRead;

use super::content::FileData;
use super::faults::{Cut, Fault, Pacer};
use super::Shared;

/// What a `Range` header asks of a `size`-byte file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// No (usable) range: the whole file, `200`.
    Full,
    /// `start..end` (end exclusive), `206`.
    Part(u64, u64),
    /// Starts past the end: `416`.
    Unsatisfiable,
}

impl Span {
    /// Parse `bytes=N-`, `bytes=N-M` or `bytes=-S`; anything else is ignored, like most servers do.
    pub(crate) fn parse(header: Option<&str>, size: u64) -> Self {
        let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Self::Full };
        let Some((a, b)) = spec.split_once('-') else { return Self::Full };
        let (a, b) = (a.trim(), b.trim());
        let (start, end) = match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if e >= s => (s, (e + 1).min(size)),
            (Ok(s), Err(_)) if b.is_empty() => (s, size),
            (Err(_), Ok(n)) if a.is_empty() => (size.saturating_sub(n), size),
            _ => return Self::Full,
        };
        if start >= size {
            Self::Unsatisfiable
        } else {
            Self::Part(start, end)
        }
    }

    /// `start..end` of the body for a `size`-byte file.
    pub(crate) fn bounds(self, size: u64) -> (u64, u64) {
        match self {
            Self::Part(s, e) => (s, e),
            _ => (0, size),
        }
    }
}

/// An `AsyncRead` over `file[start..end]`, paced at the hub's rate, with a fault applied.
pub(crate) struct BodyReader {
    shared: Arc<Shared>,
    file: Arc<FileData>,
    pos: u64,
    end: u64,
    cut: Option<(u64, Cut)>,
    wrong: bool,
    pacer: Pacer,
    reserved: Option<usize>,
    timer: Option<Timer>,
}

impl BodyReader {
    pub(crate) fn new(
        shared: Arc<Shared>,
        file: Arc<FileData>,
        (start, end): (u64, u64),
        fault: Option<Fault>,
    ) -> Self {
        let cut = fault.and_then(Fault::cut).map(|(n, how)| (start + n, how));
        let wrong = fault == Some(Fault::WrongBytes);
        Self { shared, file, pos: start, end, cut, wrong, pacer: Pacer::new(), reserved: None, timer: None }
    }
}

impl AsyncRead for BodyReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if let Some(timer) = &mut this.timer {
                if Pin::new(timer).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timer = None;
            }
            if let Some((_, how)) = this.cut.filter(|(at, _)| this.pos >= *at) {
                return match how {
                    // Trickling is a CDN fault; a small file served here just stalls.
                    Cut::Stall | Cut::Trickle => Poll::Pending,
                    Cut::Reset => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
                    Cut::Truncate => Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                };
            }
            if this.pos >= this.end || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let Some(n) = this.reserved else {
                let limit = this.cut.map_or(this.end, |(at, _)| at.min(this.end));
                let n = (this.shared.chunk_len() as u64).min(limit - this.pos) as usize;
                this.reserved = Some(n);
                let due = this.pacer.reserve(&this.shared.rate, n).max(this.shared.reserve_link(n));
                this.timer = due.map(Timer::at);
                continue;
            };
            let n = n.min(buf.len());
            this.reserved = None;
            this.file.fill(this.pos, &mut buf[..n]);
            if this.wrong {
                buf[0] ^= 0xFF;
            }
            this.pos += n as u64;
            this.shared.recorder.hub_sent(n as u64);
            return Poll::Ready(Ok(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn ranges() {
        assert_eq!(Span::parse(None, 10), Span::Full);
        assert_eq!(Span::parse(Some("bytes=3-"), 10), Span::Part(3, 10));
        assert_eq!(Span::parse(Some("bytes=3-4"), 10), Span::Part(3, 5));
        assert_eq!(Span::parse(Some("bytes=3-400"), 10), Span::Part(3, 10));
        assert_eq!(Span::parse(Some("bytes=-4"), 10), Span::Part(6, 10));
        assert_eq!(Span::parse(Some("bytes=10-"), 10), Span::Unsatisfiable);
        assert_eq!(Span::parse(Some("items=1-2"), 10), Span::Full);
        assert_eq!(Span::parse(Some("bytes=5-2"), 10), Span::Full);
    }
}
