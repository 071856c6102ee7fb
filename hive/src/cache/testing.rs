//! Test scaffolding for the modules that write a cache (`cache`, `mirror`, `download`): a repo in
//! a fresh temporary directory, empty or holding one published file.

use std::path::PathBuf;

use super::{fs, RepoDir};

/// The repo `org/name` in a fresh temporary cache (removed when the `TempDir` drops).
pub(crate) fn scratch_repo() -> (tempfile::TempDir, RepoDir) {
    let dir = tempfile::tempdir().unwrap();
    let repo = RepoDir::new(dir.path(), "org/name");
    (dir, repo)
}

/// A [`scratch_repo`] holding `sub/f.bin` (`hello`), published as a download does it: blob,
/// snapshot link, `main` ref.
pub(crate) struct Published {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) repo: RepoDir,
    pub(crate) etag: String,
    pub(crate) commit: String,
    /// The snapshot's link to the blob.
    pub(crate) link: PathBuf,
}

pub(crate) fn published() -> Published {
    let (dir, repo) = scratch_repo();
    let (etag, commit) = ("a".repeat(64), "c".repeat(40));
    fs::write_atomic(dir.path(), &repo.incomplete(&etag), b"hello").unwrap();
    repo.finish_blob(&etag, &repo.incomplete(&etag)).unwrap();
    let link = repo.link(&commit, "sub/f.bin", &etag).unwrap();
    repo.write_ref("main", &commit).unwrap();
    Published { dir, repo, etag, commit, link }
}
