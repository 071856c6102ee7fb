//! One worker's disk writes: a batch filling while the previous one is written on a blocking
//! thread (counted as the job's outstanding work), each write hashed from memory when it extends
//! the hashed prefix; a finished write moves its part's written prefix.

use std::time::{Duration, Instant};

use super::hash::Hashing;
use super::plan::Shared;
use crate::cache::{at, CacheError};

/// Disk write batch of a worker that shares the file (two per connection at most: one filling,
/// one being written).
pub(super) const PART_BATCH: usize = 128 << 10;
/// Disk write batch of a lone worker (as one stream's largest).
pub(super) const LONE_BATCH: usize = 1 << 20;

/// A quiet network sends a batch that is not full only once its first byte has waited this long
/// (at most 1/32 s, as [`super::batch_for`] under a cap): a CDN that paces each connection in
/// bursts (64 KiB every 4 ms) otherwise cost a write per burst, not per batch.
pub(super) const IDLE_SEND_AFTER: Duration = Duration::from_millis(30);

/// A batch being written on a blocking thread: gives back the (emptied) buffer and whether the
/// batch was hashed from memory.
type InFlight = smol::Task<(Vec<u8>, std::io::Result<bool>)>;

/// One worker's disk writes: a batch filling while the previous one is written.
pub(super) struct Writer {
    buf: Vec<u8>,
    spare: Vec<u8>,
    pub(super) batch: usize,
    /// Part and file offset of `buf[0]`, and when it was buffered.
    part: usize,
    pos: u64,
    since: Instant,
    /// The write on a blocking thread: its part, where the part's written prefix then ends.
    in_flight: Option<(usize, u64, InFlight)>,
}

impl Writer {
    /// A writer with a fixed batch (tests), else one each request sets.
    pub(super) fn new(fixed: Option<usize>) -> Self {
        let batch = fixed.unwrap_or(PART_BATCH).max(1);
        Self { buf: Vec::new(), spare: Vec::new(), batch, part: 0, pos: 0, since: Instant::now(), in_flight: None }
    }

    /// Buffers `data` of part `i` at offset `at`; a full batch goes to the disk.
    pub(super) async fn push(&mut self, shared: &Shared, i: usize, at: u64, mut data: &[u8]) -> Result<(), CacheError> {
        if !self.buf.is_empty() && (self.part != i || self.pos + self.buf.len() as u64 != at) {
            self.send(shared).await?;
        }
        if self.buf.is_empty() {
            (self.part, self.pos, self.since) = (i, at, Instant::now());
        }
        while !data.is_empty() {
            data = super::super::fill(&mut self.buf, self.batch, data);
            if self.buf.len() >= self.batch {
                self.settle(shared).await?;
                self.start(shared);
            }
        }
        Ok(())
    }

    /// The network is quiet: record a finished write, send what is buffered once it waited
    /// [`IDLE_SEND_AFTER`].
    pub(super) async fn idle(&mut self, shared: &Shared) -> Result<(), CacheError> {
        if self.in_flight.as_ref().is_some_and(|(.., t)| t.is_finished()) {
            self.settle(shared).await?;
        }
        if self.in_flight.is_none() && !self.buf.is_empty() && self.since.elapsed() >= IDLE_SEND_AFTER {
            self.start(shared);
        }
        Ok(())
    }

    /// What is buffered goes to the disk (waiting only for the write before it).
    pub(super) async fn send(&mut self, shared: &Shared) -> Result<(), CacheError> {
        self.settle(shared).await?;
        if !self.buf.is_empty() {
            self.start(shared);
        }
        Ok(())
    }

    /// Everything buffered, on disk.
    pub(super) async fn flush(&mut self, shared: &Shared) -> Result<(), CacheError> {
        self.send(shared).await?;
        self.settle(shared).await
    }

    /// Bytes its buffers hold (allocated).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.capacity() + self.spare.capacity()
    }

    /// Hands the batch to a blocking thread (counted as the job's outstanding work from here).
    fn start(&mut self, shared: &Shared) {
        let next = std::mem::take(&mut self.spare);
        let buf = std::mem::replace(&mut self.buf, next);
        let (offset, len) = (self.pos, buf.len() as u64);
        self.pos += len;
        let write = shared.sparse.writer(offset, len);
        let hash = shared.hash.clone();
        let task = shared.gate.unblock(move || {
            let res = write(&buf).map(|()| Hashing::inline(&hash, offset, &buf));
            (buf, res)
        });
        self.in_flight = Some((self.part, offset + len, task));
    }

    /// Waits for the write in flight; then its part's written prefix grows.
    async fn settle(&mut self, shared: &Shared) -> Result<(), CacheError> {
        let Some((i, upto, task)) = self.in_flight.take() else { return Ok(()) };
        let (mut buf, res) = task.await;
        buf.clear();
        // A buffer of a larger batch before (a lone worker's, now sharing the file) is let go:
        // a worker holds at most two buffers of its current batch.
        if buf.capacity() <= self.batch {
            self.spare = buf;
        }
        let hashed = res.map_err(at(&shared.path))?;
        let complete = {
            let mut plan = shared.plan();
            let part = &mut plan.parts[i];
            part.written = upto;
            part.written >= part.end
        };
        // The hasher has work only when these bytes were not hashed here, or when a finished
        // part may join the prefix to bytes written further on.
        if !hashed || complete {
            shared.written.notify(usize::MAX);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::super::super::sparse::{Sparse, BLOCK};
    use super::super::plan::{Part, Plan};
    use super::*;
    use crate::cache::RepoDir;
    use crate::jobs::Outstanding;

    /// A shared plan over a fresh part file of `size` bytes with these parts.
    async fn shared(dir: &std::path::Path, size: u64, parts: Vec<Part>) -> (Shared, RepoDir, String) {
        let repo = RepoDir::new(dir, "org/name");
        let etag = "e".repeat(64);
        let gate = Outstanding::default();
        let sparse = Sparse::open(&repo, &etag, size, &gate).await.unwrap();
        let (ends, _) = async_channel::unbounded();
        let shared = Shared {
            sparse,
            path: repo.part_files(&etag).data,
            gate,
            chunk: BLOCK,
            plan: Mutex::new(Plan { parts, cold: 0, limit: 2, workers: 2 }),
            written: event_listener::Event::new(),
            ends,
            hash: Arc::new(Mutex::new(Hashing::default())),
        };
        (shared, repo, etag)
    }

    /// A fresh part file of `size` bytes as one part, taken (the directory lives as long as it).
    async fn one_part(size: u64) -> (tempfile::TempDir, Shared, RepoDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let (shared, repo, etag) = shared(dir.path(), size, vec![Part::new(0, size, true)]).await;
        (dir, shared, repo, etag)
    }

    fn bytes(range: std::ops::Range<u64>) -> Vec<u8> {
        range.map(|i| (i % 253) as u8).collect()
    }

    #[test]
    fn batches_land_at_their_offsets_move_the_written_prefix_and_hash_inline() {
        smol::block_on(async {
            let size = 4 * BLOCK;
            let (_dir, shared, repo, etag) = one_part(size).await;
            let mut w = Writer::new(Some(usize::try_from(BLOCK).unwrap()));
            let data = bytes(0..size);
            // Odd-sized chunks, as a body delivers them.
            for (at, chunk) in (0..).step_by(100_000).zip(data.chunks(100_000)) {
                w.push(&shared, 0, at, chunk).await.unwrap();
            }
            assert!(shared.plan().parts[0].written < size, "the last batch is still buffered");
            w.flush(&shared).await.unwrap();
            assert_eq!(shared.plan().parts[0].written, size);
            assert_eq!(std::fs::read(repo.part_files(&etag).data).unwrap(), data);
            assert_eq!(Hashing::lock(&shared.hash).at, size, "written in order: hashed from memory");
            drop(shared);
            assert_eq!(super::super::super::sparse::done_bytes(&repo, &etag, size), size, "every block marked");
        });
    }

    #[test]
    fn a_smaller_batch_lets_the_larger_buffers_go() {
        smol::block_on(async {
            let size = 16 * BLOCK;
            let (_dir, shared, ..) = one_part(size).await;
            let big = usize::try_from(4 * BLOCK).unwrap();
            let mut w = Writer::new(Some(big));
            let data = bytes(0..size);
            // Lone: two big buffers, one filling, one written.
            w.push(&shared, 0, 0, &data[..2 * big]).await.unwrap();
            w.flush(&shared).await.unwrap();
            assert_eq!(w.held(), 2 * big);
            // Sharing the file now: after a round of the smaller batch, nothing bigger is held.
            w.batch = usize::try_from(BLOCK).unwrap();
            w.push(&shared, 0, 2 * big as u64, &data[2 * big..]).await.unwrap();
            w.flush(&shared).await.unwrap();
            assert!(w.held() <= 2 * w.batch, "{} bytes held for batches of {}", w.held(), w.batch);
            assert_eq!(shared.plan().parts[0].written, size);
        });
    }

    #[test]
    fn a_quiet_network_sends_a_batch_only_once_it_waited() {
        smol::block_on(async {
            let size = 4 * BLOCK;
            let (_dir, shared, ..) = one_part(size).await;
            let mut w = Writer::new(Some(usize::try_from(size).unwrap()));
            w.push(&shared, 0, 0, &bytes(0..BLOCK)).await.unwrap();
            w.idle(&shared).await.unwrap();
            assert!(w.in_flight.is_none() && w.buf.len() == usize::try_from(BLOCK).unwrap(), "young: kept");
            smol::Timer::after(IDLE_SEND_AFTER).await;
            w.idle(&shared).await.unwrap();
            assert!(w.buf.is_empty() && w.in_flight.is_some(), "waited long enough: sent");
            w.push(&shared, 0, BLOCK, &bytes(BLOCK..2 * BLOCK)).await.unwrap();
            w.flush(&shared).await.unwrap();
            assert_eq!(shared.plan().parts[0].written, 2 * BLOCK);
        });
    }

    #[test]
    fn a_batch_never_spans_two_parts_and_out_of_order_writes_are_left_to_the_hasher() {
        smol::block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let size = 4 * BLOCK;
            let parts = vec![Part::new(0, 2 * BLOCK, true), Part::new(2 * BLOCK, size, true)];
            let (shared, repo, etag) = shared(dir.path(), size, parts).await;
            let mut w = Writer::new(Some(usize::try_from(4 * BLOCK).unwrap()));
            // The second part first: past the hashed prefix, so not hashed inline.
            w.push(&shared, 1, 2 * BLOCK, &bytes(2 * BLOCK..3 * BLOCK)).await.unwrap();
            // Another part: the first batch goes to the disk before this one is buffered.
            w.push(&shared, 0, 0, &bytes(0..BLOCK)).await.unwrap();
            w.flush(&shared).await.unwrap();
            {
                let plan = shared.plan();
                assert_eq!((plan.parts[0].written, plan.parts[1].written), (BLOCK, 3 * BLOCK));
                assert_eq!(plan.frontier(size), BLOCK);
            }
            assert_eq!(Hashing::lock(&shared.hash).at, BLOCK, "only the prefix at 0 was hashed inline");
            let on_disk = std::fs::read(repo.part_files(&etag).data).unwrap();
            assert_eq!(&on_disk[..usize::try_from(BLOCK).unwrap()], &bytes(0..BLOCK)[..]);
            assert_eq!(&on_disk[usize::try_from(2 * BLOCK).unwrap()..], &bytes(2 * BLOCK..3 * BLOCK)[..]);
        });
    }
}
