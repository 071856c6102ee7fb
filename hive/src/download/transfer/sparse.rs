//! Where a file fetched in parts lives until it is verified: a sparse data file and its part
//! map, beside the blob's lock and under names no HF tool resumes or reports:
//!
//! ```text
//! .locks/models--{org}--{name}/{etag}.parts      the bytes, each written at its offset
//! .locks/models--{org}--{name}/{etag}.partmap    "rbee-parts 1 {size} {block}\n" + one byte per block
//! ```
//!
//! `blobs/<etag>.incomplete` is never written while parts are in flight, so it is always what an
//! older huggingface_hub expects: a contiguous prefix (or absent). One found at the start (left by
//! huggingface_hub or a one-stream download) is taken over: renamed to `.parts`, its whole blocks
//! marked done.
//!
//! A block's byte in the map turns `1` only after the block's data was written and `fdatasync`ed
//! (same blocking call, data first), so after a cancel, a `kill -9` or a power cut every block
//! marked done holds its bytes; the map itself is created atomically and durably. Both files are
//! opened without following a link ([`crate::cache::fs`]);
//! what a part had received beyond its last whole block is fetched again (less than one block plus
//! what was buffered: under 1 MiB per connection).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::cache::fs::{self, Open};
use crate::cache::{CacheError, RepoDir, PART_MAP_MAX};
use crate::jobs::Outstanding;

/// Granularity of the part map (and of every part boundary).
pub(crate) const BLOCK: u64 = 256 << 10;

/// The data file, the map, and which blocks were done when it was opened.
pub(crate) struct Sparse {
    pub(crate) data: Arc<File>,
    map: Arc<File>,
    pub(crate) size: u64,
    header: u64,
    done: Vec<bool>,
}

fn header(size: u64) -> String {
    format!("rbee-parts 1 {size} {BLOCK}\n")
}

impl Sparse {
    /// Opens the part files of `etag` (creating them, or taking over `.incomplete`), counted as
    /// the job's outstanding work.
    pub(crate) async fn open(repo: &RepoDir, etag: &str, size: u64, gate: &Outstanding) -> Result<Self, CacheError> {
        let (repo, etag) = (repo.clone(), etag.to_owned());
        gate.unblock(move || open(&repo, &etag, size)).await
    }

    /// The byte ranges still to fetch, in file order (block-aligned).
    pub(crate) fn missing(&self) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (i, _) in self.done.iter().enumerate().filter(|(_, d)| !**d) {
            let (start, end) = self.block(i as u64);
            match runs.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => runs.push((start, end)),
            }
        }
        runs
    }

    /// Bytes already there.
    pub(crate) fn done_bytes(&self) -> u64 {
        bytes_done(&self.done, self.size)
    }

    fn block(&self, i: u64) -> (u64, u64) {
        block(i, self.size)
    }

    /// A blocking write of `buf` at `offset` that also marks the blocks it completes, given that
    /// the part writing it holds every byte from a block boundary up to `offset`.
    pub(crate) fn writer(&self, offset: u64, len: u64) -> impl FnOnce(&[u8]) -> std::io::Result<()> + Send + 'static {
        let (data, map, header, size) = (self.data.clone(), self.map.clone(), self.header, self.size);
        let end = offset + len;
        // Blocks whose end falls in (offset, end].
        let first = offset / BLOCK;
        let last = if end == size { size.div_ceil(BLOCK) } else { end / BLOCK };
        move |buf: &[u8]| {
            data.write_all_at(buf, offset)?;
            if last > first {
                fs::sync_data(&data)?; // the mark below may reach the disk only after the bytes
                let ones = vec![b'1'; usize::try_from(last - first).unwrap_or(0)];
                map.write_all_at(&ones, header + first)?;
            }
            Ok(())
        }
    }
}

/// The blocks a part map marks done, if it is the map of a `size`-byte file.
fn read_map(repo: &RepoDir, map: &Path, size: u64) -> Option<Vec<bool>> {
    let head = header(size);
    let blocks = usize::try_from(size.div_ceil(BLOCK)).ok()?;
    let m = repo
        .read_small(map, PART_MAP_MAX)
        .filter(|m| m.len() == head.len() + blocks && m.starts_with(head.as_bytes()))?;
    Some(m[head.len()..].iter().map(|b| *b == b'1').collect())
}

/// Block `i` of a `size`-byte file, as a byte range.
fn block(i: u64, size: u64) -> (u64, u64) {
    (i * BLOCK, ((i + 1) * BLOCK).min(size))
}

/// Bytes in the blocks `done` marks, of a `size`-byte file.
fn bytes_done(done: &[bool], size: u64) -> u64 {
    (0..).zip(done).filter(|(_, d)| **d).map(|(i, _)| block(i, size)).map(|(s, e)| e - s).sum()
}

/// Bytes of a `size`-byte file that an earlier download in parts already holds (0 if none).
pub(crate) fn done_bytes(repo: &RepoDir, etag: &str, size: u64) -> u64 {
    if repo.file_len(&repo.parts(etag)).is_none() {
        return 0;
    }
    bytes_done(&read_map(repo, &repo.part_map(etag), size).unwrap_or_default(), size)
}

fn open(repo: &RepoDir, etag: &str, size: u64) -> Result<Sparse, CacheError> {
    let (data, map, incomplete) = (repo.parts(etag), repo.part_map(etag), repo.incomplete(etag));
    let head = header(size);
    let blocks = usize::try_from(size.div_ceil(BLOCK)).unwrap_or(usize::MAX);
    let known = read_map(repo, &map, size).filter(|_| repo.file_len(&data).is_some());
    let done = match known {
        Some(done) => done,
        None => {
            // A link, FIFO or device named `.incomplete` is refused here, never renamed.
            let prefix = fs::open(repo.cache(), &incomplete, Open::Read)?;
            let taken = match prefix.map(|f| f.metadata().map(|m| m.len())) {
                Some(Ok(len)) if len <= size => fs::rename(repo.cache(), &incomplete, &data, true).map(|()| len)?,
                Some(Err(e)) => return Err(crate::cache::at(&incomplete)(e)),
                _ => 0,
            };
            if taken == 0 {
                repo.open(&data, Open::Truncate)?;
            }
            let done: Vec<bool> = (0..blocks as u64).map(|i| ((i + 1) * BLOCK).min(size) <= taken).collect();
            let mut text = head.clone().into_bytes();
            text.extend(done.iter().map(|d| if *d { b'1' } else { b'0' }));
            fs::write_atomic(repo.cache(), &map, &text)?;
            done
        }
    };
    let data = repo.open(&data, Open::ReadWrite)?;
    let map = repo.open(&map, Open::ReadWrite)?;
    Ok(Sparse { data: Arc::new(data), map: Arc::new(map), size, header: head.len() as u64, done })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_prefix_is_taken_over_and_blocks_are_marked_after_their_bytes() {
        smol::block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let repo = RepoDir::new(dir.path(), "org/name");
            let etag = "e".repeat(64);
            let size = 4 * BLOCK + 100;
            let prefix = vec![7u8; usize::try_from(2 * BLOCK + 5).unwrap()];
            fs::write_atomic(dir.path(), &repo.incomplete(&etag), &prefix).unwrap();
            let gate = Outstanding::default();
            let sparse = Sparse::open(&repo, &etag, size, &gate).await.unwrap();
            assert!(!repo.incomplete(&etag).exists(), "the prefix moved beside the lock");
            assert_eq!(sparse.missing(), vec![(2 * BLOCK, size)], "whole blocks of the prefix are done");
            assert_eq!(sparse.done_bytes(), 2 * BLOCK);
            // The last block ends at the file's end; one write covering blocks 2..=4 marks all three.
            sparse.writer(2 * BLOCK, size - 2 * BLOCK)(&vec![1u8; usize::try_from(size - 2 * BLOCK).unwrap()]).unwrap();
            drop(sparse);
            let again = Sparse::open(&repo, &etag, size, &gate).await.unwrap();
            assert_eq!((again.missing(), again.done_bytes()), (vec![], size));
            assert_eq!(done_bytes(&repo, &etag, size), size, "read from the map alone");
            // A write that ends mid-block marks only the blocks it completes.
            repo.remove_parts(&etag);
            let fresh = Sparse::open(&repo, &etag, size, &gate).await.unwrap();
            fresh.writer(0, BLOCK + 1)(&vec![1u8; usize::try_from(BLOCK + 1).unwrap()]).unwrap();
            drop(fresh);
            let reopened = Sparse::open(&repo, &etag, size, &gate).await.unwrap();
            assert_eq!(reopened.missing(), vec![(BLOCK, size)]);
            assert_eq!(done_bytes(&repo, &etag, size), BLOCK);
            assert_eq!(done_bytes(&repo, &"f".repeat(64), size), 0, "no parts at all");
        });
    }
}
