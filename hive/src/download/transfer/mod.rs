//! The transfer: a resolved file's bytes from the CDN into the cache, hashed on the way.
//!
//! A file big enough for more than one part travels as byte ranges over several connections at
//! once ([`parts`]), written at their offsets into a sparse file beside the blob lock, while
//! sha256 follows the contiguous prefix; anything else (small files, unknown size, one allowed
//! connection, a server that ignores `Range`) is one stream appended to `blobs/<etag>.incomplete`
//! ([`stream`]). Either way the result is a file, its size and its sha256, for the caller to
//! verify and publish.

mod body;
mod meter;
mod partial;
mod parts;
mod sparse;
mod stream;

use std::path::PathBuf;

use super::bandwidth::Pacer;
use super::error::{network, DownloadError};
use super::hub::{Hub, Resolved};
use super::retry::Retry;
use crate::cache::{PartMap, RepoDir};
use crate::jobs::JobCtx;

use parts::PARALLEL_MIN;

/// Bytes of blob `etag` (`size` bytes, if known) that an earlier attempt left in the cache (its
/// `.incomplete` prefix, or the blocks a download in parts finished).
pub(crate) fn fetched_before(repo: &RepoDir, etag: &str, size: Option<u64>) -> u64 {
    let prefix = repo.file_len(&repo.incomplete(etag)).unwrap_or(0);
    let parts = size.map_or(0, |size| sparse::done_bytes(repo, etag, size));
    prefix.max(parts)
}

/// One file's transfer: what to fetch, where to, and how.
pub(crate) struct Transfer<'a> {
    pub(crate) hub: &'a Hub,
    /// Bandwidth caps: every chunk read waits its turn here.
    pub(crate) pacer: &'a Pacer,
    pub(crate) retry: Retry,
    pub(crate) ctx: &'a JobCtx,
    pub(crate) repo: &'a RepoDir,
    pub(crate) file: &'a str,
    pub(crate) res: &'a Resolved,
    /// Tests only: fixed disk write batch.
    pub(crate) write_batch: Option<usize>,
    /// Most connections at once (≥ 1).
    pub(crate) max_parts: usize,
}

impl Transfer<'_> {
    /// The error for a refused GET: the plain "Xet only" one for a Xet file, else the hub's.
    fn refusal(&self, response: &surf::Response) -> DownloadError {
        super::xet::refused(self.res, response, self.file)
            .unwrap_or_else(|| self.hub.status_error(response, "", "", self.file))
    }
}

/// Moves what fits of `data` into the write batch `buf` (up to `batch` bytes); returns the rest.
fn fill<'d>(buf: &mut Vec<u8>, batch: usize, data: &'d [u8]) -> &'d [u8] {
    if buf.capacity() < batch {
        buf.reserve_exact(batch - buf.len());
    }
    let (now, rest) = data.split_at(data.len().min(batch.saturating_sub(buf.len())));
    buf.extend_from_slice(now);
    rest
}

/// A fetched file, not yet verified nor published.
pub(crate) struct Fetched {
    /// Where its bytes are.
    pub(crate) path: PathBuf,
    /// Its size.
    pub(crate) size: u64,
    /// Hex sha256 of its content.
    pub(crate) sha256: String,
    /// Fetched in parts (its part map is to be removed on publish).
    pub(crate) in_parts: bool,
}

/// Why one attempt (of a stream or a part) ended early.
pub(crate) enum Interrupted {
    Fatal(DownloadError),
    Retry(DownloadError),
}

impl Interrupted {
    fn from_status(e: DownloadError) -> Self {
        if e.retryable() {
            Self::Retry(e)
        } else {
            Self::Fatal(e)
        }
    }

    fn stalled(what: &str, stall: std::time::Duration) -> Self {
        Self::Retry(network(what, format!("no data for {}s (stalled)", stall.as_secs())))
    }
}

impl From<crate::cache::CacheError> for Interrupted {
    fn from(e: crate::cache::CacheError) -> Self {
        Self::Fatal(e.into())
    }
}

impl Transfer<'_> {
    /// Fetches the file: in parts when it is big enough and the server honours `Range`, else
    /// as one stream.
    pub(crate) async fn run(&self) -> Result<Fetched, DownloadError> {
        let parts_exist = self.repo.file_len(&self.repo.part_files(&self.res.etag).data).is_some();
        // A file whose part map could not be read back (over 512 GiB) goes as one stream.
        let in_parts = |s: &u64| *s >= PARALLEL_MIN && (self.max_parts > 1 || parts_exist) && PartMap::fits(*s);
        if let Some(size) = self.res.size.filter(in_parts) {
            match self.parts(size).await? {
                Some(fetched) => return Ok(fetched),
                None => {
                    self.ctx.narrate(format!(
                        "⚠️  the server ignored the Range request; fetching `{}` over one connection from byte 0",
                        self.file
                    ));
                    self.repo.remove_parts(&self.res.etag);
                    self.repo.remove_file(&self.repo.incomplete(&self.res.etag));
                }
            }
        }
        self.stream().await
    }
}
