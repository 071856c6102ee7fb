//! One writer per blob: an in-process async mutex plus a cross-process file lock at
//! `.locks/models--org--name/{etag}.lock` (the path `huggingface_hub` locks too).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use smol::lock::{Mutex as AsyncMutex, MutexGuardArc};

use super::{at, fs::Open, CacheError, RepoDir};

/// Holds the right to write one blob until dropped.
#[derive(Debug)]
pub struct BlobLock {
    _local: MutexGuardArc<()>,
    file: File,
}

fn local_lock(path: &Path) -> Arc<AsyncMutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<AsyncMutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS.get_or_init(Mutex::default).lock().expect("lock table poisoned");
    map.retain(|_, l| Arc::strong_count(l) > 1);
    map.entry(path.to_owned()).or_default().clone()
}

impl BlobLock {
    /// Waits for the lock of `etag`'s blob in `repo`; calls `waiting` once if someone else holds it.
    ///
    /// # Errors
    /// When the lock file cannot be created (or is a link, FIFO or device: never opened through).
    pub async fn acquire(repo: &RepoDir, etag: &str, waiting: impl FnOnce()) -> Result<Self, CacheError> {
        let path = &repo.lock_path(etag);
        let local = local_lock(path);
        let mut waiting = Some(waiting);
        let guard = match local.try_lock_arc() {
            Some(g) => g,
            None => {
                if let Some(w) = waiting.take() {
                    w();
                }
                local.lock_arc().await
            }
        };
        let file = repo.open(path, Open::Create)?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _local: guard, file }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if let Some(w) = waiting.take() {
                        w();
                    }
                    smol::Timer::after(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(at(path)(e)),
            }
        }
    }
}

impl Drop for BlobLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
