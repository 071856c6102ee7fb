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
//! ```
//!
//! Part files live beside the lock, where no HF tool resumes or reports them: an older
//! huggingface_hub resumes `.incomplete` by its length, so that file only ever holds a
//! contiguous prefix.

mod lock;
mod scan;
pub mod verify;

pub use lock::BlobLock;
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
        Self { root: cache.join(&folder), locks: cache.join(".locks").join(folder) }
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
        let text = std::fs::read_to_string(self.root.join("refs").join(revision)).ok()?;
        Some(text.trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// The cached commit `revision` names: a 40-hex commit whose snapshot exists, or the commit
    /// `refs/{revision}` records. What the mirror serves and what an offline download answers from.
    #[must_use]
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if rbee_protocol::validate::is_commit(revision) {
            Some(revision.to_ascii_lowercase()).filter(|c| self.snapshot(c).is_dir())
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
        let snapshot = self.snapshot(commit);
        std::fs::create_dir_all(&snapshot).map_err(at(&snapshot))?;
        if revision == commit {
            return Ok(());
        }
        let path = self.root.join("refs").join(revision);
        if self.read_ref(revision).as_deref() == Some(commit) {
            return Ok(());
        }
        create_parent(&path)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, commit).map_err(at(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(at(&path))
    }

    /// `.locks/models--org--name/{etag}.parts`: a download in parts (sparse).
    #[must_use]
    pub fn parts(&self, etag: &str) -> PathBuf {
        self.locks.join(format!("{etag}.parts"))
    }

    /// `.locks/models--org--name/{etag}.partmap`: which blocks of [`RepoDir::parts`] are done.
    #[must_use]
    pub fn part_map(&self, etag: &str) -> PathBuf {
        self.locks.join(format!("{etag}.partmap"))
    }

    /// Deletes the part files of `etag` (best effort).
    pub fn remove_parts(&self, etag: &str) {
        let _ = std::fs::remove_file(self.part_map(etag));
        let _ = std::fs::remove_file(self.parts(etag));
    }

    /// Publishes a verified download (`.incomplete` or part file): renames it to `blobs/{etag}`,
    /// then drops what is left of the other form.
    ///
    /// # Errors
    /// When the rename fails.
    pub fn finish_blob(&self, etag: &str, from: &Path) -> Result<(), CacheError> {
        let blob = self.blob(etag);
        create_parent(&blob)?;
        std::fs::rename(from, &blob).map_err(at(&blob))?;
        let _ = std::fs::remove_file(self.incomplete(etag));
        self.remove_parts(etag);
        Ok(())
    }

    /// Creates (or replaces) the snapshot link `snapshots/{commit}/{file}` → `../../blobs/{etag}`.
    ///
    /// # Errors
    /// When the link cannot be created.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf, CacheError> {
        let pointer = self.pointer(commit, file);
        create_parent(&pointer)?;
        let depth = file.matches('/').count() + 2;
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(etag);
        if std::fs::read_link(&pointer).is_ok_and(|t| t == target) {
            return Ok(pointer);
        }
        let tmp = pointer.with_file_name(format!(".{}.tmp{}", etag, std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).map_err(at(&tmp))?;
        std::fs::rename(&tmp, &pointer).map_err(at(&pointer))?;
        Ok(pointer)
    }

    /// The repo root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `mkdir -p` of a path's parent.
///
/// # Errors
/// When the directory cannot be created.
pub fn create_parent(path: &Path) -> Result<(), CacheError> {
    let parent = path.parent().unwrap_or(path);
    std::fs::create_dir_all(parent).map_err(at(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_huggingface_hub() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoDir::new(dir.path(), "org/name");
        let etag = "a".repeat(64);
        let commit = "c".repeat(40);
        create_parent(&repo.incomplete(&etag)).unwrap();
        std::fs::write(repo.incomplete(&etag), b"hello").unwrap();
        repo.finish_blob(&etag, &repo.incomplete(&etag)).unwrap();
        let p = repo.link(&commit, "sub/f.bin", &etag).unwrap();
        repo.write_ref("main", &commit).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert_eq!(std::fs::read_link(&p).unwrap(), PathBuf::from(format!("../../../blobs/{etag}")));
        assert!(p.starts_with(dir.path().join("models--org--name/snapshots")));
        assert_eq!(repo.read_ref("main").unwrap(), commit);
    }
}
