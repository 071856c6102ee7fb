//! sha256 of a file written in parts, over its contiguous prefix `..at`: a write that lands
//! exactly at `at` is hashed from memory by the thread that wrote it ([`Hashing::inline`]); the
//! hasher task ([`follow`]) reads the rest back from the part file, [`HASH_STEP`] at a time, as
//! the contiguous written prefix grows. Knows nothing of parts: it is told where the prefix ends.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::cache::{at, CacheError};
use crate::jobs::Outstanding;

/// Bytes hashed per blocking call.
const HASH_STEP: usize = 1 << 20;

/// sha256 over the contiguous prefix `..at`.
#[derive(Default)]
pub(super) struct Hashing {
    sha: Sha256,
    pub(super) at: u64,
    /// The hasher task's read buffer.
    buf: Vec<u8>,
}

impl Hashing {
    /// Hashes `data` (just written at `offset`) if it extends the prefix; whether it did.
    pub(super) fn inline(hash: &Mutex<Hashing>, offset: u64, data: &[u8]) -> bool {
        let Ok(mut h) = hash.try_lock() else { return false };
        if h.at != offset {
            return false;
        }
        h.sha.update(data);
        h.at += data.len() as u64;
        true
    }

    pub(super) fn lock(hash: &Mutex<Hashing>) -> std::sync::MutexGuard<'_, Hashing> {
        hash.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One blocking step: hashes up to [`HASH_STEP`] bytes of `data` from `at` towards `frontier`.
    fn step(hash: &Mutex<Hashing>, data: &File, frontier: u64) -> std::io::Result<()> {
        let mut h = Self::lock(hash);
        let mut buf = std::mem::take(&mut h.buf);
        buf.resize(HASH_STEP, 0);
        let n = usize::try_from(frontier.saturating_sub(h.at)).unwrap_or(HASH_STEP).min(HASH_STEP);
        let from = h.at;
        let res = data.read_exact_at(&mut buf[..n], from);
        if res.is_ok() {
            h.sha.update(&buf[..n]);
            h.at += n as u64;
        }
        h.buf = buf;
        res
    }
}

/// What the hasher task follows: the hash state the writers share, the part file, its size.
pub(super) struct Follow<'a> {
    pub(super) hash: Arc<Mutex<Hashing>>,
    pub(super) data: Arc<File>,
    pub(super) size: u64,
    pub(super) path: &'a Path,
    /// Rung when the written prefix (or the inline hash) may have grown.
    pub(super) written: &'a event_listener::Event,
    pub(super) gate: &'a Outstanding,
}

/// sha256 over the part file in file order, following the contiguous written prefix that
/// `frontier` tells: what the writers did not hash from memory is read back, one step per
/// blocking call (so a cancel waits for at most one).
pub(super) async fn follow(f: Follow<'_>, frontier: impl Fn() -> u64) -> Result<String, CacheError> {
    let at = || Hashing::lock(&f.hash).at;
    while at() < f.size {
        let frontier = loop {
            let listener = f.written.listen();
            let front = frontier();
            if front > at() {
                break front;
            }
            // Also woken when a write hashed inline finished the file.
            if at() >= f.size {
                break f.size;
            }
            listener.await;
        };
        let (hash, data) = (f.hash.clone(), f.data.clone());
        let res = f.gate.unblock(move || Hashing::step(&hash, &data, frontier)).await;
        res.map_err(at_path(f.path))?;
    }
    Ok(hex::encode(Hashing::lock(&f.hash).sha.clone().finalize()))
}

fn at_path(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |e| at(path)(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn inline_hashes_only_what_extends_the_prefix() {
        let hash = Mutex::new(Hashing::default());
        assert!(!Hashing::inline(&hash, 5, b"later"), "a write past the prefix is left to the hasher");
        assert!(Hashing::inline(&hash, 0, b"hello "));
        assert!(!Hashing::inline(&hash, 0, b"hello "), "a write before the prefix is not hashed twice");
        assert!(Hashing::inline(&hash, 6, b"world"));
        let h = hash.lock().unwrap();
        assert_eq!((h.at, hex::encode(h.sha.clone().finalize())), (11, sha(b"hello world")));
        drop(h);
        let _busy = hash.lock().unwrap();
        assert!(!Hashing::inline(&hash, 11, b"!"), "never waits for the hasher: it reads it back later");
    }

    #[test]
    fn the_hasher_reads_back_what_was_not_hashed_inline_up_to_the_frontier() {
        smol::block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("data");
            let content: Vec<u8> = (0..3 * HASH_STEP + 123).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &content).unwrap();
            let hash = Arc::new(Mutex::new(Hashing::default()));
            // The first 1000 bytes were hashed inline; the rest is read back.
            assert!(Hashing::inline(&hash, 0, &content[..1000]));
            let written = event_listener::Event::new();
            let gate = Outstanding::default();
            let size = content.len() as u64;
            let frontier = std::sync::atomic::AtomicU64::new(HASH_STEP as u64);
            let f = Follow {
                hash: hash.clone(),
                data: Arc::new(File::open(&path).unwrap()),
                size,
                path: &path,
                written: &written,
                gate: &gate,
            };
            let follower = follow(f, || frontier.load(std::sync::atomic::Ordering::SeqCst));
            let grow = async {
                // The hasher stops at the frontier until the prefix grows.
                while Hashing::lock(&hash).at < HASH_STEP as u64 {
                    smol::Timer::after(std::time::Duration::from_millis(1)).await;
                }
                smol::Timer::after(std::time::Duration::from_millis(20)).await;
                assert_eq!(Hashing::lock(&hash).at, HASH_STEP as u64, "never past the frontier");
                frontier.store(size, std::sync::atomic::Ordering::SeqCst);
                written.notify(usize::MAX);
            };
            let (got, ()) = futures_lite::future::zip(follower, grow).await;
            assert_eq!(got.unwrap(), sha(&content));
        });
    }
}
