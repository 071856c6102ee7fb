//! The files of a download in parts and the format of its part map, read here alone (the scan
//! and the downloader's resume both ask this module). What the files mean, and when each is
//! written, is `download/transfer/sparse.rs`'s business.
//!
//! ```text
//! .locks/models--{org}--{name}/{etag}.parts            the bytes, each written at its offset
//! .locks/models--{org}--{name}/{etag}.partmap          "rbee-parts 1 {size} {block}\n" + one byte per block
//! .locks/models--{org}--{name}/{etag}.partmap.synced   the same, as of the last checkpoint (durable)
//! .locks/models--{org}--{name}/{etag}.partboot         the boot id of the machine that wrote the live map
//! ```

use std::path::PathBuf;

use super::RepoDir;

/// Granularity of the part map (and of every part boundary).
pub const BLOCK: u64 = 64 << 10;

/// Most bytes a part map may hold (a byte per 64 KiB block: a 50 GB file needs
/// 0.8 MB; 8 MiB holds the map of a 512 GiB file).
pub const PART_MAP_MAX: u64 = 8 << 20;

/// Where the part files of one blob are.
#[derive(Debug, Clone)]
pub struct PartFiles {
    /// `{etag}.parts`: the data (sparse).
    pub data: PathBuf,
    /// `{etag}.partmap`: which blocks of the data are done.
    pub map: PathBuf,
    /// `{etag}.partmap.synced`: the blocks known to be on disk (what a resume trusts after the
    /// machine restarted).
    pub synced: PathBuf,
    /// `{etag}.partboot`: the boot of the machine that wrote the live map.
    pub boot: PathBuf,
}

impl PartFiles {
    /// Every one of them, maps before data (the order a removal goes in).
    #[must_use]
    pub fn all(&self) -> [&PathBuf; 4] {
        [&self.map, &self.synced, &self.boot, &self.data]
    }
}

impl RepoDir {
    /// The part files of `etag`, beside its lock.
    #[must_use]
    pub fn part_files(&self, etag: &str) -> PartFiles {
        let at = |suffix: &str| self.locks.join(format!("{etag}.{suffix}"));
        PartFiles { data: at("parts"), map: at("partmap"), synced: at("partmap.synced"), boot: at("partboot") }
    }

    /// The part map at `path`, if it is one (at most [`PART_MAP_MAX`] bytes, never through a link).
    #[must_use]
    pub fn read_part_map(&self, path: &std::path::Path) -> Option<PartMap> {
        PartMap::parse(&self.read_small(path, PART_MAP_MAX)?)
    }
}

/// A part map, read: the file's size, the block size and which blocks are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartMap {
    pub size: u64,
    pub block: u64,
    pub done: Vec<bool>,
}

impl PartMap {
    /// A fresh map of a `size`-byte file in [`BLOCK`]s, nothing done.
    #[must_use]
    pub fn empty(size: u64) -> Self {
        Self { size, block: BLOCK, done: vec![false; usize::try_from(size.div_ceil(BLOCK)).unwrap_or(0)] }
    }

    /// Whether the map of a `size`-byte file stays within [`PART_MAP_MAX`], so that it can be read
    /// back (a larger file is downloaded as one stream).
    #[must_use]
    pub fn fits(size: u64) -> bool {
        let header = Self { size, block: BLOCK, done: Vec::new() }.header_len();
        header.saturating_add(size.div_ceil(BLOCK)) <= PART_MAP_MAX
    }

    /// `rbee-parts 1 {size} {block}\n`, then a byte per block (`1` done, `0` not); anything
    /// else (another version, a block count that does not fit the size) is no map.
    #[must_use]
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let nl = bytes.iter().position(|b| *b == b'\n')?;
        let head = std::str::from_utf8(&bytes[..nl]).ok()?;
        let mut words = head.split(' ');
        if (words.next(), words.next()) != (Some("rbee-parts"), Some("1")) {
            return None;
        }
        let mut num = || words.next()?.parse::<u64>().ok();
        let (size, block) = (num()?, num().filter(|b| *b > 0)?);
        let marks = &bytes[nl + 1..];
        if words.next().is_some() || marks.len() as u64 != size.div_ceil(block) {
            return None;
        }
        Some(Self { size, block, done: marks.iter().map(|b| *b == b'1').collect() })
    }

    /// The map's bytes, as [`PartMap::parse`] reads them.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = self.header().into_bytes();
        text.extend(self.done.iter().map(|d| if *d { b'1' } else { b'0' }));
        text
    }

    /// The header line's length: block `i`'s mark is at byte `header_len() + i`.
    #[must_use]
    pub fn header_len(&self) -> u64 {
        self.header().len() as u64
    }

    fn header(&self) -> String {
        format!("rbee-parts 1 {} {}\n", self.size, self.block)
    }

    /// Block `i` as a byte range.
    #[must_use]
    pub fn block_range(&self, i: u64) -> (u64, u64) {
        (i * self.block, ((i + 1) * self.block).min(self.size))
    }

    /// Bytes in the blocks marked done.
    #[must_use]
    pub fn done_bytes(&self) -> u64 {
        (0..).zip(&self.done).filter(|(_, d)| **d).map(|(i, _)| self.block_range(i)).map(|(s, e)| e - s).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_reads_back_what_was_written_and_nothing_malformed_is_a_map() {
        let mut map = PartMap::empty(3 * BLOCK + 10);
        assert_eq!(map.done.len(), 4);
        map.done[1] = true;
        map.done[3] = true;
        let bytes = map.to_bytes();
        assert_eq!(
            &bytes[..map.header_len() as usize],
            format!("rbee-parts 1 {} {BLOCK}\n", 3 * BLOCK + 10).as_bytes()
        );
        assert_eq!(PartMap::parse(&bytes), Some(map.clone()));
        assert_eq!(map.done_bytes(), BLOCK + 10, "the last block is short");
        for bad in [
            b"rbee-parts 2 10 5\n01".to_vec(),
            b"rbee-parts 1 10 5\n0".to_vec(),
            b"rbee-parts 1 10 5\n011".to_vec(),
            b"rbee-parts 1 10 0\n".to_vec(),
            b"rbee-parts 1 10 5 7\n01".to_vec(),
            b"rbee-parts 1 ten 5\n01".to_vec(),
            b"rbee-parts 1 10 5".to_vec(),
        ] {
            assert_eq!(PartMap::parse(&bad), None, "{}", String::from_utf8_lossy(&bad));
        }
    }

    #[test]
    fn a_map_too_large_to_read_back_does_not_fit() {
        let largest = (PART_MAP_MAX - 40) * BLOCK;
        assert!(PartMap::fits(largest));
        let m = PartMap::empty(largest);
        assert!(m.header_len() + m.done.len() as u64 <= PART_MAP_MAX);
        assert!(!PartMap::fits(PART_MAP_MAX * BLOCK));
        assert!(!PartMap::fits(u64::MAX));
    }

    #[test]
    fn the_part_files_sit_beside_the_lock() {
        let (_dir, repo) = crate::cache::testing::scratch_repo();
        let files = repo.part_files("abc");
        let lock = repo.lock_path("abc");
        for (path, name) in
            files.all().into_iter().zip(["abc.partmap", "abc.partmap.synced", "abc.partboot", "abc.parts"])
        {
            assert_eq!(path.parent(), lock.parent());
            assert_eq!(path.file_name().unwrap(), name);
        }
    }
}
