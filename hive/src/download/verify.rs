//! Verification of a fetched file against what the hub promised: its size, then its content —
//! sha256 for LFS files (hashed during the transfer), git's blob sha1 for files stored in git.
//! On a mismatch the caller deletes the fetched bytes.

use super::error::DownloadError;
use super::hub::{git_blob_sha1, Digest, Resolved};
use super::transfer::Fetched;
use crate::jobs::JobCtx;

/// Checks `got` against `res`; narrates the verdict.
pub(crate) async fn verify(ctx: &JobCtx, file: &str, res: &Resolved, got: &Fetched) -> Result<(), DownloadError> {
    let size = got.size;
    let mismatch = if res.size.is_some_and(|s| s != size) {
        Some(DownloadError::SizeMismatch { file: file.into(), expected: res.size.unwrap_or(0), actual: size })
    } else {
        let wrong = |algorithm, expected: &str, actual: String| {
            (expected != actual).then(|| DownloadError::HashMismatch {
                algorithm,
                file: file.into(),
                expected: expected.to_owned(),
                actual,
            })
        };
        match res.digest() {
            Digest::Sha256(want) => wrong("sha256", want, got.sha256.clone()),
            Digest::GitSha1(want) => {
                let p = got.path.clone();
                let actual = smol::unblock(move || git_blob_sha1(&p)).await.map_err(crate::cache::at(&got.path))?;
                wrong("git blob sha1", want, actual)
            }
            Digest::Unverifiable => None,
        }
    };
    if let Some(e) = mismatch {
        return Err(e);
    }
    ctx.narrate(match res.digest() {
        Digest::Sha256(_) => format!("🔒 verified `{file}`: {size} bytes, sha256 ok"),
        Digest::GitSha1(_) => format!("🔒 verified `{file}`: {size} bytes, git blob sha1 ok"),
        Digest::Unverifiable => format!(
            "⚠️  `{file}`: {size} bytes, content not verifiable: its ETag `{}` is neither a sha256 nor a git sha1",
            rbee_protocol::escape(&res.etag)
        ),
    });
    Ok(())
}
