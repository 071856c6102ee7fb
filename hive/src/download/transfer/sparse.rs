//! Where a file fetched in parts lives until it is verified: a sparse data file and its part
//! map, beside the blob's lock and under names no HF tool resumes or reports (their names and
//! the map's format: [`crate::cache::PartFiles`], [`crate::cache::PartMap`]).
//!
//! `blobs/<etag>.incomplete` is never written while parts are in flight, so it is always what an
//! older huggingface_hub expects: a contiguous prefix (or absent). One found at the start (left by
//! huggingface_hub or a one-stream download) is taken over: renamed to `.parts`, its whole blocks
//! marked done.
//!
//! A block's byte in the map turns `1` only after the block's data was written (same blocking
//! call, data first), so after a cancel or a `kill -9` every block marked done holds its bytes:
//! the page cache survives both. A power cut does not, and the kernel may write the map back
//! before the data; so the map is trusted only by the boot that wrote it (`{etag}.partboot`
//! records the boot id, durably). Every [`CHECKPOINT`] a writer `fdatasync`s the data and then
//! writes what that covers, atomically and durably, as `{etag}.partmap.synced`: after a reboot
//! a resume trusts only that (at most a checkpoint's worth is fetched again). An `fdatasync` per
//! block instead cost too much (measured in BENCHMARKS.md, section "durable"). Every file is
//! opened without following a link ([`crate::cache::fs`]);
//! what a part had received beyond its last whole block is fetched again (less than one 64 KiB
//! block plus what was buffered: one write batch, under a bandwidth cap at most 1/32 s of it).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cache::fs::{self, Open};
pub(crate) use crate::cache::BLOCK;
use crate::cache::{CacheError, PartMap, RepoDir};
use crate::jobs::Outstanding;

/// How often a writer makes the progress so far durable (see the module docs).
const CHECKPOINT: Duration = Duration::from_secs(5);

/// The data file, the map, and which blocks were done when it was opened.
pub(crate) struct Sparse {
    pub(crate) data: Arc<File>,
    map: Arc<File>,
    /// The blocks done when it was opened (and the file's size and the map's header length).
    known: PartMap,
    checkpoint: Arc<Checkpoint>,
    /// Held by each write for its `pwrite`s: one at a time, waiters asleep (see [`Sparse::writer`]).
    turn: Arc<Mutex<()>>,
}

/// The blocks marked done so far, and when they were last made durable.
struct Checkpoint {
    repo: RepoDir,
    /// `{etag}.partmap.synced`.
    synced: PathBuf,
    done: Mutex<PartMap>,
    last: Mutex<Instant>,
}

impl Checkpoint {
    /// Records blocks `first..last` done; once a [`CHECKPOINT`] has passed (and no other writer
    /// is at it), `fdatasync`s the data and writes the blocks that covers as the synced map.
    fn mark(&self, first: u64, last: u64, data: &File) -> std::io::Result<()> {
        let mut done = self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for d in done
            .done
            .iter_mut()
            .take(usize::try_from(last).unwrap_or(usize::MAX))
            .skip(usize::try_from(first).unwrap_or(0))
        {
            *d = true;
        }
        let Ok(mut at) = self.last.try_lock() else { return Ok(()) };
        if at.elapsed() < CHECKPOINT {
            return Ok(());
        }
        *at = Instant::now();
        let snapshot = done.clone();
        drop(done);
        fs::sync_data(data)?;
        fs::write_atomic(self.repo.cache(), &self.synced, &snapshot.to_bytes()).map_err(std::io::Error::other)
    }
}

/// What this boot of the machine is (`None`: unknown, so no map is trusted past a restart).
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_owned())
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
        for (i, _) in (0..).zip(&self.known.done).filter(|(_, d)| !**d) {
            let (start, end) = self.known.block_range(i);
            match runs.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => runs.push((start, end)),
            }
        }
        runs
    }

    /// The whole file's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.known.size
    }

    /// Bytes already there.
    pub(crate) fn done_bytes(&self) -> u64 {
        self.known.done_bytes()
    }

    /// A blocking write of `buf` at `offset` that also marks the blocks it completes, given that
    /// the part writing it holds every byte from a block boundary up to `offset`.
    pub(crate) fn writer(&self, offset: u64, len: u64) -> impl FnOnce(&[u8]) -> std::io::Result<()> + Send + 'static {
        let (data, map, header, size) = (self.data.clone(), self.map.clone(), self.known.header_len(), self.size());
        let (checkpoint, turn) = (self.checkpoint.clone(), self.turn.clone());
        let end = offset + len;
        // Blocks whose end falls in (offset, end].
        let first = offset / BLOCK;
        let last = if end == size { size.div_ceil(BLOCK) } else { end / BLOCK };
        move |buf: &[u8]| {
            // The workers' writes take turns: the kernel serialises writes to one file anyway (the
            // inode lock), and waiting there spins a core while the other copies (measured: about
            // a tenth of the hive's CPU with 16 parts on tmpfs, and slower copies beside it).
            let turn = turn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            data.write_all_at(buf, offset)?;
            if last > first {
                let ones = vec![b'1'; usize::try_from(last - first).unwrap_or(0)];
                map.write_all_at(&ones, header + first)?;
                drop(turn);
                checkpoint.mark(first, last, &data)?;
            }
            Ok(())
        }
    }
}

/// The part map at `path`, if it is one of a `size`-byte file in [`BLOCK`]s.
fn read_map(repo: &RepoDir, path: &std::path::Path, size: u64) -> Option<PartMap> {
    repo.read_part_map(path).filter(|m| m.size == size && m.block == BLOCK)
}

/// Bytes of a `size`-byte file that an earlier download in parts already holds (0 if none).
pub(crate) fn done_bytes(repo: &RepoDir, etag: &str, size: u64) -> u64 {
    let files = repo.part_files(etag);
    if repo.file_len(&files.data).is_none() {
        return 0;
    }
    read_map(repo, &files.map, size).map_or(0, |m| m.done_bytes())
}

fn open(repo: &RepoDir, etag: &str, size: u64) -> Result<Sparse, CacheError> {
    let crate::cache::PartFiles { data, map, synced, boot } = repo.part_files(etag);
    let this_boot = boot_id();
    // The live map, if this boot wrote it; after a restart of the machine, only the synced one.
    let same_boot = this_boot.as_ref().is_some_and(|b| repo.read_small(&boot, 64).is_some_and(|r| r == b.as_bytes()));
    let known = read_map(repo, if same_boot { &map } else { &synced }, size).filter(|_| repo.file_len(&data).is_some());
    let done = match known {
        Some(done) => {
            if !same_boot {
                fs::replace(repo.cache(), &map, &done.to_bytes())?;
            }
            done
        }
        None => start(repo, etag, size)?,
    };
    // Not synced: lost or stale after a power cut, it names no later boot, so nothing is trusted.
    fs::replace(repo.cache(), &boot, this_boot.unwrap_or_default().as_bytes())?;
    let checkpoint = Arc::new(Checkpoint {
        repo: repo.clone(),
        synced,
        done: Mutex::new(done.clone()),
        last: Mutex::new(Instant::now()),
    });
    let data = repo.open(&data, Open::ReadWrite)?;
    let map = repo.open(&map, Open::ReadWrite)?;
    Ok(Sparse { data: Arc::new(data), map: Arc::new(map), known: done, checkpoint, turn: Arc::default() })
}

/// A fresh part file (or the `.incomplete` prefix taken over, made durable first) and its maps.
fn start(repo: &RepoDir, etag: &str, size: u64) -> Result<PartMap, CacheError> {
    let (files, incomplete) = (repo.part_files(etag), repo.incomplete(etag));
    let data = &files.data;
    // A link, FIFO or device named `.incomplete` is refused here, never renamed.
    let prefix = fs::open(repo.cache(), &incomplete, Open::Read)?;
    let taken = match prefix.map(|f| f.metadata().map(|m| m.len()).and_then(|len| fs::sync_data(&f).map(|()| len))) {
        Some(Ok(len)) if len <= size => fs::rename(repo.cache(), &incomplete, data, true).map(|()| len)?,
        Some(Err(e)) => return Err(crate::cache::at(&incomplete)(e)),
        _ => 0,
    };
    if taken == 0 {
        repo.open(data, Open::Truncate)?;
    }
    // Whole blocks of the prefix are done.
    let mut done = PartMap::empty(size);
    done.done = (0..done.done.len() as u64).map(|i| done.block_range(i).1 <= taken).collect();
    let text = done.to_bytes();
    if taken > 0 {
        // The prefix taken over was synced above: trusted past a restart too.
        fs::write_atomic(repo.cache(), &files.synced, &text)?;
    }
    fs::replace(repo.cache(), &files.map, &text)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_prefix_is_taken_over_and_blocks_are_marked_after_their_bytes() {
        smol::block_on(async {
            let (dir, repo) = crate::cache::testing::scratch_repo();
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

    #[test]
    fn after_a_restart_of_the_machine_only_the_synced_map_is_trusted() {
        smol::block_on(async {
            let (dir, repo) = crate::cache::testing::scratch_repo();
            let etag = "e".repeat(64);
            let size = 4 * BLOCK;
            let gate = Outstanding::default();
            let sparse = Sparse::open(&repo, &etag, size, &gate).await.unwrap();
            sparse.writer(0, 2 * BLOCK)(&vec![1u8; usize::try_from(2 * BLOCK).unwrap()]).unwrap();
            drop(sparse);
            let same_boot = Sparse::open(&repo, &etag, size, &gate).await.unwrap();
            assert_eq!(same_boot.done_bytes(), 2 * BLOCK, "kill -9: the page cache, so the live map, survives");
            drop(same_boot);
            // Another boot: the live map's marks may have reached the disk before their data.
            fs::write_atomic(dir.path(), &repo.part_files(&etag).boot, b"another-boot").unwrap();
            let rebooted = Sparse::open(&repo, &etag, size, &gate).await.unwrap();
            assert_eq!(rebooted.done_bytes(), 0, "no checkpoint was made: nothing is trusted");
            assert_eq!(done_bytes(&repo, &etag, size), 0, "the live map now says so too");
            // A checkpoint (its interval passed): the synced map is what a later boot trusts.
            *rebooted.checkpoint.last.lock().unwrap() -= CHECKPOINT;
            rebooted.writer(0, 3 * BLOCK)(&vec![2u8; usize::try_from(3 * BLOCK).unwrap()]).unwrap();
            drop(rebooted);
            fs::write_atomic(dir.path(), &repo.part_files(&etag).boot, b"a third boot").unwrap();
            let again = Sparse::open(&repo, &etag, size, &gate).await.unwrap();
            assert_eq!(again.missing(), vec![(3 * BLOCK, size)]);
        });
    }
}
