//! The hive's cache as a read-only HuggingFace endpoint (`HF_ENDPOINT=http://host:7835/hf`):
//! what a file or a revision of a repo is, looked up in the cache exactly as huggingface_hub
//! reads it — `refs/<revision>` (or a 40-hex commit as is), then `snapshots/<commit>/<file>`, a
//! link that must name `../…/blobs/<etag>` of the same repo. Only that link is read, and never
//! followed: what is served is always `blobs/<etag>` of the repo's own directory, so no name and
//! no link can reach outside the cache. With pull-through (`pull`), a miss becomes a
//! download job of this hive, served while it runs (`blob`).

mod blob;
mod pull;
pub mod tree;

pub use blob::{BlobBody, Growing};
pub use pull::Pull;

use std::path::{Path, PathBuf};

use rbee_protocol::{validate, ErrorCode};

use crate::cache::{CacheError, RemoveError, RepoDir};
use crate::download::DownloadError;

/// A cached file, ready to serve.
#[derive(Debug, Clone)]
pub struct Located {
    /// The commit the revision resolved to (`X-Repo-Commit`).
    pub commit: String,
    /// The blob's etag: sha256 of an LFS file, git blob id of others (`ETag`, `X-Linked-Etag`).
    pub etag: String,
    /// Its size (`X-Linked-Size`).
    pub size: u64,
    /// `blobs/<etag>`.
    pub blob: PathBuf,
}

/// Why the mirror cannot answer from the cache (or, pulling through, from upstream).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// A repo id, revision or file name that could escape the cache.
    #[error(transparent)]
    Invalid(#[from] validate::InvalidName),
    /// Nothing of the repo is cached.
    #[error("repository `{0}` is not in this hive's cache")]
    RepoNotFound(String),
    /// The repo is cached, the revision is not.
    #[error("revision `{revision}` of `{repo}` is not in this hive's cache")]
    RevisionNotFound {
        /// Repo id.
        repo: String,
        /// Branch, tag or commit asked for.
        revision: String,
    },
    /// The revision is cached, the file is not.
    #[error("file `{file}` of `{repo}` at `{revision}` is not in this hive's cache")]
    EntryNotFound {
        /// Repo id.
        repo: String,
        /// Revision asked for.
        revision: String,
        /// File asked for.
        file: String,
    },
    /// A directory of the repo is a symlink: nothing is served through it.
    #[error(transparent)]
    Symlink(RemoveError),
    /// The cache could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Pulling through, the hive's own upstream failed.
    #[error("this hive's upstream: {0}")]
    Upstream(DownloadError),
}

impl MirrorError {
    /// Whether pulling through could answer it (the cache lacks it).
    #[must_use]
    pub fn is_miss(&self) -> bool {
        matches!(self, Self::RepoNotFound(_) | Self::RevisionNotFound { .. } | Self::EntryNotFound { .. })
    }

    /// The hive's error code (and so the status).
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidName,
            Self::RepoNotFound(_) => ErrorCode::ModelNotFound,
            Self::RevisionNotFound { .. } => ErrorCode::RevisionNotFound,
            Self::EntryNotFound { .. } => ErrorCode::FileNotFound,
            Self::Symlink(_) => ErrorCode::SymlinkRefused,
            Self::Cache(_) => ErrorCode::CacheError,
            Self::Upstream(_) => ErrorCode::UpstreamError,
        }
    }

    /// `X-Error-Code` as the hub sends it, which huggingface_hub and rbee turn into their own
    /// "repository / revision / file not found" errors.
    #[must_use]
    pub fn hub_code(&self) -> Option<&'static str> {
        match self {
            Self::RepoNotFound(_) => Some("RepoNotFound"),
            Self::RevisionNotFound { .. } => Some("RevisionNotFound"),
            Self::EntryNotFound { .. } => Some("EntryNotFound"),
            _ => None,
        }
    }
}

impl From<DownloadError> for MirrorError {
    /// Upstream's "not found" answers stay "not found" (with their hub code).
    fn from(e: DownloadError) -> Self {
        match e {
            DownloadError::Invalid(e) => Self::Invalid(e),
            DownloadError::RepoNotFound(repo) => Self::RepoNotFound(repo),
            DownloadError::RevisionNotFound { repo, revision } => Self::RevisionNotFound { repo, revision },
            DownloadError::EntryNotFound { repo, revision, file } => Self::EntryNotFound { repo, revision, file },
            other => Self::Upstream(other),
        }
    }
}

/// The repo's directory, refusing names that could escape and symlinked layouts.
fn repo_dir(cache: &Path, repo: &str, revision: &str) -> Result<RepoDir, MirrorError> {
    validate::repo_id(repo)?;
    validate::revision(revision)?;
    let dir = RepoDir::new(cache, repo);
    if !crate::cache::fs::is(cache, dir.root(), crate::cache::fs::Kind::Dir) {
        return Err(MirrorError::RepoNotFound(repo.to_owned()));
    }
    dir.check_no_symlinks().map_err(MirrorError::Symlink)?;
    Ok(dir)
}

/// The commit `revision` names in the cache ([`RepoDir::commit_of`]).
fn commit_of(dir: &RepoDir, repo: &str, revision: &str) -> Result<String, MirrorError> {
    let commit = dir.commit_of(revision);
    commit.ok_or_else(|| MirrorError::RevisionNotFound { repo: repo.to_owned(), revision: revision.to_owned() })
}

/// Looks `file` of `repo` at `revision` up in the cache (blocking: run it off the executor).
///
/// # Errors
/// When a name is invalid, or the repo, revision or file is not cached.
pub fn locate(cache: &Path, repo: &str, revision: &str, file: &str) -> Result<Located, MirrorError> {
    let dir = repo_dir(cache, repo, revision)?;
    validate::file_name(file)?;
    let commit = commit_of(&dir, repo, revision)?;
    let missing =
        || MirrorError::EntryNotFound { repo: repo.to_owned(), revision: revision.to_owned(), file: file.to_owned() };
    let etag = dir.linked_etag(&dir.pointer(&commit, file)).ok_or_else(missing)?;
    let blob = dir.blob(&etag);
    let size = dir.file_len(&blob).ok_or_else(missing)?;
    Ok(Located { commit, etag, size, blob })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with_file() -> (tempfile::TempDir, String, String) {
        let published = crate::cache::testing::published();
        (published.dir, published.etag, published.commit)
    }

    #[test]
    fn finds_by_ref_and_commit() {
        let (dir, etag, commit) = cache_with_file();
        for rev in ["main", commit.as_str()] {
            let got = locate(dir.path(), "org/name", rev, "sub/f.bin").unwrap();
            assert_eq!((got.commit.as_str(), got.etag.as_str(), got.size), (commit.as_str(), etag.as_str(), 5));
        }
        let (listed, files) = tree::cached(dir.path(), "org/name", "main").unwrap();
        assert_eq!((listed, files.len(), files[0].path.as_str(), files[0].size), (commit, 1, "sub/f.bin", 5));
    }

    #[test]
    fn misses_say_what_is_missing() {
        let (dir, _, _) = cache_with_file();
        let code = |repo: &str, rev: &str, file: &str| locate(dir.path(), repo, rev, file).unwrap_err().hub_code();
        assert_eq!(code("org/other", "main", "f"), Some("RepoNotFound"));
        assert_eq!(code("org/name", "dev", "sub/f.bin"), Some("RevisionNotFound"));
        assert_eq!(code("org/name", &"d".repeat(40), "sub/f.bin"), Some("RevisionNotFound"));
        assert_eq!(code("org/name", "main", "nope.bin"), Some("EntryNotFound"));
        assert!(matches!(locate(dir.path(), "org/name", "main", "../x"), Err(MirrorError::Invalid(_))));
    }

    #[test]
    fn links_out_of_the_repo_are_not_served() {
        let (dir, _, commit) = cache_with_file();
        let repo = RepoDir::new(dir.path(), "org/name");
        let outside = dir.path().join("secret");
        std::fs::write(&outside, b"secret").unwrap();
        std::os::unix::fs::symlink(&outside, repo.pointer(&commit, "abs.bin")).unwrap();
        std::os::unix::fs::symlink("../../../secret", repo.pointer(&commit, "up.bin")).unwrap();
        for file in ["abs.bin", "up.bin"] {
            assert_eq!(locate(dir.path(), "org/name", "main", file).unwrap_err().hub_code(), Some("EntryNotFound"));
        }
    }
}
