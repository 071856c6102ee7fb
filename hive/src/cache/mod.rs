//! The HuggingFace-compatible cache, laid out exactly as `huggingface_hub` writes it:
//!
//! ```text
//! {cache}/models--{org}--{name}/
//!     blobs/{etag}                    finished, verified content
//!     blobs/{etag}.incomplete         partial download (kept for resume)
//!     snapshots/{commit}/{file}   →   ../../blobs/{etag} (relative symlink)
//!     refs/{revision}                 the commit a branch or tag pointed at
//! {cache}/.locks/models--{org}--{name}/{etag}.lock
//! {cache}/.locks/models--{org}--{name}/{etag}.parts      partial download in parts (sparse)
//! {cache}/.locks/models--{org}--{name}/{etag}.partmap    which blocks of it are done
//! {cache}/.locks/models--{org}--{name}/{etag}.partmap.synced, .partboot   (see parts.rs)
//! {cache}/.locks/models--{org}--{name}/{etag}.meta       what the blob is of, its size once published
//! ```
//!
//! Every path is opened through [`fs`], from the cache root, never following a link.
//!
//! Part files live beside the lock, where no HF tool resumes or reports them: an older
//! huggingface_hub resumes `.incomplete` by its length, so that file only ever holds a
//! contiguous prefix.

pub mod fs;
mod intact;
mod lock;
mod parts;
mod scan;
#[cfg(test)]
pub(crate) mod testing;
pub mod verify;

pub use intact::BlobState;
pub use lock::BlobLock;
pub use parts::{PartFiles, PartMap, BLOCK, PART_MAP_MAX};
pub use scan::{list, remove, PartialMeta, RemoveError};

use std::io;
use std::path::{Path, PathBuf};

/// Failure touching the cache, always naming the path.
#[derive(Debug, thiserror::Error)]
#[error("cache path `{}`: {source}", path.display())]
pub struct CacheError {
    /// The path involved.
    pub path: PathBuf,
    /// What the OS said.
    #[source]
    pub source: io::Error,
}

/// Attaches the path to an I/O error.
pub fn at(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError { path: path.to_owned(), source }
}

/// One repo's directory in the cache.
#[derive(Debug, Clone)]
pub struct RepoDir {
    cache: PathBuf,
    root: PathBuf,
    locks: PathBuf,
}

/// The folder name of a model repo: `models--org--name`.
#[must_use]
pub fn folder_name(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

impl RepoDir {
    /// The directory of `repo` (already validated) under `cache`.
    #[must_use]
    pub fn new(cache: &Path, repo: &str) -> Self {
        let folder = folder_name(repo);
        Self { cache: cache.to_owned(), root: cache.join(&folder), locks: cache.join(".locks").join(folder) }
    }

    /// `blobs/{etag}`.
    #[must_use]
    pub fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    /// `blobs/{etag}.incomplete`.
    #[must_use]
    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// `snapshots/{commit}/{file}`.
    #[must_use]
    pub fn pointer(&self, commit: &str, file: &str) -> PathBuf {
        self.root.join("snapshots").join(commit).join(file)
    }

    /// `snapshots/{commit}`.
    #[must_use]
    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    /// `.locks/models--org--name/{etag}.lock`.
    #[must_use]
    pub fn lock_path(&self, etag: &str) -> PathBuf {
        self.locks.join(format!("{etag}.lock"))
    }

    /// The commit `refs/{revision}` points at, if recorded.
    #[must_use]
    pub fn read_ref(&self, revision: &str) -> Option<String> {
        let text = self.read_small(&self.root.join("refs").join(revision), REF_MAX)?;
        Some(String::from_utf8_lossy(&text).trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// The bytes of the regular file `path` of this cache (at most `max`): `None` when missing;
    /// a link, FIFO, device or larger file is refused (logged) and never read.
    pub(crate) fn read_small(&self, path: &Path, max: u64) -> Option<Vec<u8>> {
        fs::read(&self.cache, path, max).unwrap_or_else(|e| {
            log::warn!("{e}");
            None
        })
    }

    /// The cache directory this repo lives in.
    #[must_use]
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// The cached commit `revision` names: a 40-hex commit whose snapshot exists, or the commit
    /// `refs/{revision}` records. What the mirror serves and what an offline download answers from.
    #[must_use]
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if rbee_protocol::validate::is_commit(revision) {
            Some(revision.to_ascii_lowercase()).filter(|c| fs::is(&self.cache, &self.snapshot(c), fs::Kind::Dir))
        } else {
            self.read_ref(revision).filter(|c| rbee_protocol::validate::is_commit(c))
        }
    }

    /// Creates `snapshots/{commit}/`, then records `refs/{revision}` = `commit` (skipped when the
    /// revision is the commit itself).
    ///
    /// # Errors
    /// When the ref cannot be written.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), CacheError> {
        // huggingface_hub's `scan_cache_dir` calls a repo corrupt when it has no `snapshots/`, or a
        // ref to a commit without `snapshots/<commit>/`: the directory comes first, so a download
        // interrupted at any moment leaves a cache it reads cleanly.
        fs::dir(&self.cache, &self.snapshot(commit), true)?;
        if revision == commit {
            return Ok(());
        }
        let path = self.root.join("refs").join(revision);
        if self.read_ref(revision).as_deref() == Some(commit) {
            return Ok(());
        }
        fs::write_atomic(&self.cache, &path, commit.as_bytes())
    }

    /// Deletes the part files of `etag` (best effort).
    pub fn remove_parts(&self, etag: &str) {
        for path in self.part_files(etag).all() {
            self.remove_file(path);
        }
    }

    /// Deletes the regular file `path` of this cache (best effort: a link or anything else there
    /// is left in place, and logged).
    pub fn remove_file(&self, path: &Path) {
        if let Err(e) = fs::remove(&self.cache, path, fs::Kind::File) {
            log::warn!("{e}");
        }
    }

    /// Opens the regular file `path` of this cache as `how` says, never through a link
    /// ([`fs::open`]); a missing file (when `how` does not create) is a `NotFound` error.
    ///
    /// # Errors
    /// When refused, missing, or the OS refuses.
    pub fn open(&self, path: &Path, how: fs::Open) -> Result<std::fs::File, CacheError> {
        fs::open(&self.cache, path, how)?.ok_or_else(|| at(path)(io::ErrorKind::NotFound.into()))
    }

    /// `lstat` of `path` of this cache (never followed): `None` when missing or refused.
    #[must_use]
    pub fn entry(&self, path: &Path) -> Option<fs::Entry> {
        fs::entry(&self.cache, path).ok().flatten()
    }

    /// The size of the regular file `path` of this cache, if it is one.
    #[must_use]
    pub fn file_len(&self, path: &Path) -> Option<u64> {
        self.entry(path).filter(|e| e.kind == fs::Kind::File).map(|e| e.len)
    }

    /// Publishes a verified download (`.incomplete` or part file): renames it to `blobs/{etag}`,
    /// then drops what is left of the other form.
    ///
    /// # Errors
    /// When the rename fails.
    pub fn finish_blob(&self, etag: &str, from: &Path) -> Result<(), CacheError> {
        // Data on disk before the name is (fdatasync, rename, fsync of `blobs/`): after a power
        // cut `blobs/<etag>` is absent or whole, never short.
        fs::publish(&self.cache, from, &self.blob(etag))?;
        if from != self.incomplete(etag) {
            self.remove_file(&self.incomplete(etag));
        }
        self.remove_parts(etag);
        Ok(())
    }

    /// Creates (or replaces) the snapshot link `snapshots/{commit}/{file}` → `../../blobs/{etag}`.
    ///
    /// # Errors
    /// When the link cannot be created.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf, CacheError> {
        let pointer = self.pointer(commit, file);
        let depth = file.matches('/').count() + 2;
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(etag);
        if fs::read_link(&self.cache, &pointer).is_some_and(|t| t == target) {
            return Ok(pointer);
        }
        fs::symlink(&self.cache, &target, &pointer)?;
        Ok(pointer)
    }

    /// The repo root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Most bytes a ref may hold (a 40-hex commit and a newline fit well).
const REF_MAX: u64 = 64;

/// Opens `blobs/<etag>` (or `blobs/<etag>.incomplete`) at `path` for reading, walking from the
/// cache root above its repo folder without following a link (the mirror's door).
///
/// # Errors
/// `NotFound` when missing; an error naming a link, FIFO or device in the way.
pub fn open_blob(path: &Path) -> io::Result<std::fs::File> {
    let cache = path.ancestors().nth(3).ok_or_else(|| io::Error::other("not a blob path"))?;
    match fs::open(cache, path, fs::Open::Read) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(io::ErrorKind::NotFound.into()),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_huggingface_hub() {
        let testing::Published { dir, repo, etag, commit, link: p } = testing::published();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert_eq!(std::fs::read_link(&p).unwrap(), PathBuf::from(format!("../../../blobs/{etag}")));
        assert!(p.starts_with(dir.path().join("models--org--name/snapshots")));
        assert_eq!(repo.read_ref("main").unwrap(), commit);
    }
}
