//! The `.incomplete` file being written: appends in large batches off the executor
//! (`smol::unblock`), hashes as it writes, and can pick up what an earlier attempt left.
//!
//! Writes are pipelined: while one batch is hashed and written on a blocking thread, the next
//! one fills, so the network side never waits for the disk unless it is a whole batch ahead.
//! A batch also goes out early when the network is idle ([`Partial::idle`]), which keeps slow
//! downloads from sitting on a full batch each: memory stays at what arrived since the last write.
//! The two batch buffers are recycled, so their pages are faulted in once per download.
//!
//! Every disk write (the open's create / truncate, each batch, a restart's truncate) runs through
//! the job's [`Outstanding`] count, taken here on the executor before the write is handed to a
//! blocking thread: a cancel waits for it, so no byte lands after `DELETE` answered.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::cache::{at, fs::Open, CacheError, RepoDir};
use crate::jobs::Outstanding;

/// First batch size: what a slow download buffers before a write.
const MIN_BATCH: usize = 32 << 10;
/// Largest batch: what a fast download buffers before a write.
const MAX_BATCH: usize = 1 << 20;
/// A batch that fills faster than this doubles (up to [`MAX_BATCH`]): fast downloads make few
/// large writes, while many slow ones hold little memory each.
const GROW_IF_FILLED_WITHIN: std::time::Duration = std::time::Duration::from_millis(10);

struct Disk {
    file: File,
    hasher: Sha256,
}

/// A batch being hashed and written: gives back the disk and the (emptied) buffer.
type InFlight = smol::Task<(Disk, Vec<u8>, Result<(), CacheError>)>;

/// An open partial download.
pub struct Partial {
    path: PathBuf,
    disk: Option<Disk>,
    buf: Vec<u8>,
    spare: Vec<u8>,
    in_flight: Option<InFlight>,
    /// Bytes handed to the disk (written or being written).
    queued: u64,
    gate: Outstanding,
    /// Current batch size (adapts between `min_batch` and `max_batch`).
    batch: usize,
    /// Largest batch ([`MAX_BATCH`] unless fixed for tests).
    max_batch: usize,
    /// When the current batch started filling.
    batch_started: std::time::Instant,
}

impl Partial {
    /// Opens (or creates) `path`, hashing the bytes already there. Anything beyond `max_len`
    /// is treated as garbage and the file restarts from zero. `fixed_batch` pins the write batch
    /// size (the hive's hidden test flag); `None` adapts it.
    pub async fn open(
        repo: &RepoDir,
        path: &Path,
        max_len: Option<u64>,
        gate: Outstanding,
        fixed_batch: Option<usize>,
    ) -> Result<Self, CacheError> {
        let (p, repo) = (path.to_owned(), repo.clone());
        let (disk, written) = gate
            .unblock(move || -> Result<(Disk, u64), CacheError> {
                let mut file = repo.open(&p, Open::Append)?;
                let mut len = file.metadata().map_err(at(&p))?.len();
                if max_len.is_some_and(|m| len > m) {
                    file.set_len(0).map_err(at(&p))?;
                    len = 0;
                }
                let mut hasher = Sha256::new();
                file.rewind().map_err(at(&p))?;
                let mut chunk = vec![0; MAX_BATCH.min(usize::try_from(len).unwrap_or(MAX_BATCH))];
                let mut left = len;
                while left > 0 {
                    let n = file.read(&mut chunk).map_err(at(&p))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&chunk[..n]);
                    left -= n as u64;
                }
                Ok((Disk { file, hasher }, len))
            })
            .await?;
        Ok(Self {
            path: path.to_owned(),
            disk: Some(disk),
            buf: Vec::new(),
            spare: Vec::new(),
            in_flight: None,
            queued: written,
            gate,
            batch: fixed_batch.unwrap_or(MIN_BATCH).max(1),
            max_batch: fixed_batch.unwrap_or(MAX_BATCH).max(1),
            batch_started: std::time::Instant::now(),
        })
    }

    /// Bytes received so far (on disk, being written, and buffered).
    pub fn len(&self) -> u64 {
        self.queued + self.buf.len() as u64
    }

    /// Appends bytes; once a batch is full it goes to the disk (waiting only for the previous one).
    pub async fn append(&mut self, mut data: &[u8]) -> Result<(), CacheError> {
        while !data.is_empty() {
            data = super::fill(&mut self.buf, self.batch, data);
            if self.buf.len() >= self.batch {
                if self.batch_started.elapsed() < GROW_IF_FILLED_WITHIN {
                    self.batch = (self.batch * 2).min(self.max_batch);
                }
                self.settle().await?;
                self.start_write();
            }
        }
        Ok(())
    }

    /// The network has nothing right now: send what is buffered to the disk, unless a write is
    /// still in flight (the next [`Partial::append`] or [`Partial::flush`] catches up).
    pub fn idle(&mut self) {
        if self.in_flight.is_none() && !self.buf.is_empty() {
            self.start_write();
        }
    }

    /// Writes everything buffered and waits until it is on disk.
    pub async fn flush(&mut self) -> Result<(), CacheError> {
        self.settle().await?;
        if !self.buf.is_empty() {
            self.start_write();
            self.settle().await?;
        }
        Ok(())
    }

    /// Drops everything and starts from byte 0 (the server ignored our Range).
    pub async fn restart(&mut self) -> Result<(), CacheError> {
        self.settle().await?;
        self.buf.clear();
        let mut disk = self.disk.take().expect("partial already finished");
        let path = self.path.clone();
        let (disk, res) = self
            .gate
            .unblock(move || {
                disk.hasher = Sha256::new();
                let res = disk.file.set_len(0).map_err(at(&path));
                (disk, res)
            })
            .await;
        self.disk = Some(disk);
        res?;
        self.queued = 0;
        Ok(())
    }

    /// Flushes and returns the hex sha256 of the whole file.
    pub async fn finish(mut self) -> Result<(u64, String), CacheError> {
        self.flush().await?;
        let disk = self.disk.take().expect("partial already finished");
        Ok((self.queued, hex::encode(disk.hasher.finalize())))
    }

    /// Waits for the write in flight, if any, and reports its result.
    async fn settle(&mut self) -> Result<(), CacheError> {
        let Some(task) = self.in_flight.take() else { return Ok(()) };
        let (disk, mut buf, res) = task.await;
        self.disk = Some(disk);
        buf.clear();
        self.spare = buf;
        res
    }

    /// Hands the buffered bytes to a blocking thread, which hashes and appends them; the write is
    /// counted as the job's outstanding work from here (so a cancel waits for it).
    fn start_write(&mut self) {
        let mut disk = self.disk.take().expect("no write may be in flight here");
        let next = std::mem::take(&mut self.spare);
        let buf = std::mem::replace(&mut self.buf, next);
        self.queued += buf.len() as u64;
        self.batch_started = std::time::Instant::now();
        let path = self.path.clone();
        self.in_flight = Some(self.gate.unblock(move || {
            disk.hasher.update(&buf);
            let res = disk.file.write_all(&buf).map_err(at(&path));
            (disk, buf, res)
        }));
    }
}
