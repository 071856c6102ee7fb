//! Is a cached blob whole? A power cut (or a careless hand) can leave `blobs/<etag>` short. A
//! cache hit checks the blob's size against the hub's, or, when the hub is not asked, against the
//! size recorded at publish in `.locks/…/<etag>.meta` (a file HF tools never read). A blob written
//! by another tool, with no recorded size and no hub to ask, is trusted, as huggingface_hub does.
//! A short blob goes back to `blobs/<etag>.incomplete`, so the next transfer resumes it and the
//! whole file is verified again before it is published.

use super::fs::{self, Kind};
use super::{CacheError, RepoDir};

/// What `blobs/<etag>` is, against the size it should have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    /// No blob (or not a regular file: never used).
    Missing,
    /// As long as it should be (or nothing says how long it should be).
    Whole,
    /// A different size than expected: this many bytes.
    Wrong(u64),
}

impl RepoDir {
    /// The state of `blobs/<etag>` against `expected` (the hub's size), else against the size
    /// recorded at publish.
    #[must_use]
    pub fn blob_state(&self, etag: &str, expected: Option<u64>) -> BlobState {
        let Some(len) = self.file_len(&self.blob(etag)) else { return BlobState::Missing };
        match expected.or_else(|| self.read_meta(etag).and_then(|m| m.size)) {
            Some(want) if want != len => BlobState::Wrong(len),
            _ => BlobState::Whole,
        }
    }

    /// Whether the snapshot link `pointer` names a blob of this repo that is whole (`expected`
    /// is the hub's size of `etag`, when asked).
    #[must_use]
    pub fn cached(&self, pointer: &std::path::Path, etag: &str, expected: Option<u64>) -> bool {
        match self.linked_etag(pointer) {
            Some(linked) if linked == etag => self.blob_state(etag, expected) == BlobState::Whole,
            Some(linked) => self.blob_state(&linked, None) == BlobState::Whole,
            None => false,
        }
    }

    /// Moves a wrong-sized `blobs/<etag>` back to `blobs/<etag>.incomplete`, for the transfer to
    /// resume (a longer one is cut by the transfer, which never trusts more than the hub's size).
    ///
    /// # Errors
    /// When the rename fails.
    pub fn reopen(&self, etag: &str) -> Result<(), CacheError> {
        fs::remove(self.cache(), &self.incomplete(etag), Kind::File)?;
        fs::rename(self.cache(), &self.blob(etag), &self.incomplete(etag), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::PartialMeta;

    #[test]
    fn a_blob_is_checked_against_the_hubs_size_else_the_recorded_one_else_trusted() {
        let (dir, repo) = crate::cache::testing::scratch_repo();
        let etag = "a".repeat(64);
        assert_eq!(repo.blob_state(&etag, Some(5)), BlobState::Missing);
        fs::write_atomic(dir.path(), &repo.blob(&etag), b"abc").unwrap();
        assert_eq!(repo.blob_state(&etag, Some(3)), BlobState::Whole);
        assert_eq!(repo.blob_state(&etag, Some(5)), BlobState::Wrong(3));
        assert_eq!(repo.blob_state(&etag, None), BlobState::Whole, "nothing recorded: trusted");
        repo.write_meta(&etag, &PartialMeta { file: "f".into(), size: Some(5) }, true).unwrap();
        assert_eq!(repo.blob_state(&etag, None), BlobState::Wrong(3), "the size recorded at publish");
        repo.reopen(&etag).unwrap();
        assert_eq!(repo.blob_state(&etag, None), BlobState::Missing);
        assert_eq!(std::fs::read(repo.incomplete(&etag)).unwrap(), b"abc", "kept to resume from");
    }
}
