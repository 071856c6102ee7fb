//! Refusing a download the disk cannot hold, before its first byte: what is still to fetch
//! against the free space (for unprivileged users, `f_bavail`) of the cache's filesystem.

use std::path::Path;

use rbee_protocol::text;

use super::error::DownloadError;

/// Bytes an unprivileged process may still write on the filesystem holding `path` (or its
/// nearest existing ancestor). `None` when it cannot be told.
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let st = nix::sys::statvfs::statvfs(existing).ok()?;
    #[allow(clippy::useless_conversion)]
    Some(u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size())))
}

/// Fails when `need` bytes do not fit at `cache` (`free` overrides the measurement: tests).
///
/// # Errors
/// [`DownloadError::NoSpace`] with both figures.
pub(crate) fn check(cache: &Path, need: u64, free: Option<u64>) -> Result<(), DownloadError> {
    let Some(free) = free.or_else(|| free_bytes(cache)) else { return Ok(()) };
    if need > free {
        return Err(DownloadError::NoSpace {
            need: text::bytes(need),
            free: text::bytes(free),
            path: cache.display().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_and_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(&dir.path().join("not/yet")).expect("statvfs of the temp dir");
        assert!(free > 0);
        check(dir.path(), 1, None).unwrap();
        let err = check(dir.path(), 4_402_341_478, Some(1_288_490_188)).unwrap_err().to_string();
        assert!(err.starts_with("needs 4.1 GiB, 1.2 GiB free at "), "{err}");
    }
}
