//! `HF_HUB_OFFLINE=1`: downloads are answered from the cache alone, as huggingface_hub does
//! offline: the revision through `refs/<revision>` (or a commit's own `snapshots/<commit>/`),
//! then the snapshot's links. No network call is made at all; what is missing is named.

use std::path::PathBuf;

use rbee_protocol::{escape, validate, ModelDownload, ModelRef};

use super::error::DownloadError;
use crate::cache::RepoDir;

fn missing(what: String) -> DownloadError {
    DownloadError::Offline(format!(
        "{what}; HF_HUB_OFFLINE is set on the hive, so the hub was not asked: download it once online, \
         or restart the hive without HF_HUB_OFFLINE"
    ))
}

/// The cached answer to `req`: the file's snapshot path, or the snapshot directory for a
/// selection of a repo.
///
/// # Errors
/// [`DownloadError::Offline`] naming the repo, revision or file the cache lacks.
pub(crate) fn answer(cache: &std::path::Path, req: &ModelDownload) -> Result<PathBuf, DownloadError> {
    let model: ModelRef = req.model_ref()?;
    let revision = req.revision();
    validate::revision(revision)?;
    let repo = RepoDir::new(cache, &model.repo);
    let id = escape(&model.repo);
    if !repo.root().is_dir() {
        return Err(missing(format!("`{id}` is not in the cache at {}", cache.display())));
    }
    let commit = repo.commit_of(revision).ok_or_else(|| {
        missing(format!("revision `{}` of `{id}` is not in the cache (no refs/{0})", escape(revision)))
    })?;
    let at = format!("`{id}` @ {} (commit {})", escape(revision), &commit[..commit.len().min(12)]);
    let cached = repo.snapshot_files(&commit);
    let file = match (&model.file, req.is_snapshot()) {
        (Some(file), _) => file.clone(),
        (None, true) => {
            let selection = req.selection();
            return if cached.iter().any(|f| selection.selects(f)) {
                Ok(repo.snapshot(&commit))
            } else {
                Err(missing(format!("no file of {at} matching the selection is in the cache")))
            };
        }
        (None, false) => rbee_protocol::pick_gguf(&cached)
            .map(str::to_owned)
            .ok_or_else(|| missing(format!("no GGUF file of {at} is in the cache")))?,
    };
    if cached.contains(&file) {
        Ok(repo.pointer(&commit, &file))
    } else {
        Err(missing(format!("`{}` of {at} is not in the cache", escape(&file))))
    }
}
