//! The `.incomplete` file being written: appends in large batches off the executor
//! (`smol::unblock`), hashes as it writes, and can pick up what an earlier attempt left.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::cache::{at, create_parent, CacheError};

/// Bytes buffered before a write.
const BATCH: usize = 1 << 20;

struct Disk {
    file: File,
    hasher: Sha256,
}

/// An open partial download.
pub struct Partial {
    path: PathBuf,
    disk: Option<Disk>,
    buf: Vec<u8>,
    written: u64,
    gate: Arc<Mutex<()>>,
}

impl Partial {
    /// Opens (or creates) `path`, hashing the bytes already there. Anything beyond `max_len`
    /// is treated as garbage and the file restarts from zero.
    pub async fn open(path: &Path, max_len: Option<u64>, gate: Arc<Mutex<()>>) -> Result<Self, CacheError> {
        create_parent(path)?;
        let p = path.to_owned();
        let (disk, written) = smol::unblock(move || -> Result<(Disk, u64), CacheError> {
            let mut file = File::options().create(true).read(true).append(true).open(&p).map_err(at(&p))?;
            let mut len = file.metadata().map_err(at(&p))?.len();
            if max_len.is_some_and(|m| len > m) {
                file.set_len(0).map_err(at(&p))?;
                len = 0;
            }
            let mut hasher = Sha256::new();
            file.rewind().map_err(at(&p))?;
            let mut chunk = vec![0; BATCH];
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
        Ok(Self { path: path.to_owned(), disk: Some(disk), buf: Vec::with_capacity(BATCH), written, gate })
    }

    /// Bytes received so far (on disk plus buffered).
    pub fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// Appends bytes, writing a batch once enough are buffered.
    pub async fn append(&mut self, data: &[u8]) -> Result<(), CacheError> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes everything buffered.
    pub async fn flush(&mut self) -> Result<(), CacheError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH));
        let n = buf.len() as u64;
        self.with_disk(move |disk, path| {
            disk.hasher.update(&buf);
            disk.file.write_all(&buf).map_err(at(path))
        })
        .await?;
        self.written += n;
        Ok(())
    }

    /// Drops everything and starts from byte 0 (the server ignored our Range).
    pub async fn restart(&mut self) -> Result<(), CacheError> {
        self.buf.clear();
        self.with_disk(|disk, path| {
            disk.hasher = Sha256::new();
            disk.file.set_len(0).map_err(at(path))
        })
        .await?;
        self.written = 0;
        Ok(())
    }

    /// Flushes and returns the hex sha256 of the whole file.
    pub async fn finish(mut self) -> Result<(u64, String), CacheError> {
        self.flush().await?;
        let disk = self.disk.take().expect("partial already finished");
        Ok((self.written, hex::encode(disk.hasher.finalize())))
    }

    /// Runs `op` on the file off the executor, holding the job's I/O gate so a cancel can
    /// wait until no write is in flight.
    async fn with_disk<F>(&mut self, op: F) -> Result<(), CacheError>
    where
        F: FnOnce(&mut Disk, &Path) -> Result<(), CacheError> + Send + 'static,
    {
        let mut disk = self.disk.take().expect("partial already finished");
        let gate = self.gate.clone();
        let path = self.path.clone();
        let (disk, res) = smol::unblock(move || {
            let _held = gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let res = op(&mut disk, &path);
            (disk, res)
        })
        .await;
        self.disk = Some(disk);
        res
    }
}
