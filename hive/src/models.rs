//! What the cache holds, one implementation for both doors: the `model_list` / `model_get` /
//! `model_delete` job operations and the `/v1/models` routes call these and nothing else.

use std::path::PathBuf;

use rbee_protocol::{escape, CachedRepo, ErrorCode, ModelListing, ModelRef, RemoveReport};

use crate::cache::{self, CacheError, RemoveError};
use crate::Hive;

/// Why a model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// Nothing of the repo is cached.
    #[error("`{0}` is not in the cache")]
    RepoNotCached(String),
    /// The repo is cached, the file is not.
    #[error("`{file}` is not in the cache for `{repo}`")]
    FileNotCached {
        /// Repo id.
        repo: String,
        /// File inside it.
        file: String,
    },
    /// The cache could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A removal was refused (in use, a symlinked layout) or failed.
    #[error(transparent)]
    Remove(#[from] RemoveError),
}

impl ModelsError {
    /// The wire error code (and so the HTTP status) for this failure.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::RepoNotCached(_) => ErrorCode::ModelNotFound,
            Self::FileNotCached { .. } => ErrorCode::FileNotFound,
            Self::Cache(_) | Self::Remove(RemoveError::Io(_)) => ErrorCode::CacheError,
            Self::Remove(RemoveError::InUse { .. }) => ErrorCode::ModelInUse,
            Self::Remove(RemoveError::Symlink { .. }) => ErrorCode::SymlinkRefused,
        }
    }
}

/// Every cached repo.
///
/// # Errors
/// When the cache cannot be read.
pub async fn list(cache: PathBuf) -> Result<ModelListing, ModelsError> {
    let mut listing = smol::unblock(move || cache::list(&cache)).await?;
    // A repo whose last file was removed holds nothing (no file, no partial byte): not a model.
    listing.repos.retain(|r| !r.files.is_empty() || r.size > 0);
    Ok(listing)
}

/// One cached repo, or only the named file of it.
///
/// # Errors
/// When the repo or file is not cached, or the cache cannot be read.
pub async fn get(cache: PathBuf, model: &ModelRef) -> Result<CachedRepo, ModelsError> {
    let listing = list(cache).await?;
    let mut repo = listing
        .repos
        .into_iter()
        .find(|r| r.repo == model.repo)
        .ok_or_else(|| ModelsError::RepoNotCached(model.repo.clone()))?;
    if let Some(file) = &model.file {
        repo.files.retain(|f| &f.file == file);
        if repo.files.is_empty() {
            return Err(ModelsError::FileNotCached { repo: model.repo.clone(), file: file.clone() });
        }
        repo.size = repo.files.iter().map(|f| f.size).sum();
    }
    Ok(repo)
}

/// Removes the repo (or its file, or with `partial` only its unfinished downloads). A download
/// in flight of what would be removed refuses the removal, naming its job; with `force` that job
/// is cancelled first (its task dropped) instead. `cache::remove` also refuses while another
/// process holds a blob lock.
///
/// # Errors
/// When nothing of it is cached, it is in use, the layout is symlinked, or a file cannot be removed.
pub async fn delete(hive: &Hive, model: &ModelRef, partial: bool, force: bool) -> Result<RemoveReport, ModelsError> {
    let cache = hive.downloader.cache().to_owned();
    if cache::fs::entry(&cache, &cache.join(cache::folder_name(&model.repo)))?.is_none() {
        return Err(ModelsError::RepoNotCached(model.repo.clone()));
    }
    while let Some(job) = hive.downloader.busy().holder(&model.repo, model.file.as_deref()) {
        if !force {
            return Err(RemoveError::InUse { what: format!("`{model}`"), by: Some(job) }.into());
        }
        log::info!("cancelling {job} to remove `{}` (force)", escape(&model.to_string()));
        // Returns once the task is dropped, which drops its claim too.
        let _ = hive.registry.cancel(&job).await;
    }
    let (repo, file) = (model.repo.clone(), model.file.clone());
    let report = smol::unblock(move || cache::remove(&cache, &repo, file.as_deref(), partial)).await?;
    let nothing = report.links == 0 && report.partials == 0 && report.blobs == 0;
    match &model.file {
        Some(file) if nothing => Err(ModelsError::FileNotCached { repo: model.repo.clone(), file: file.clone() }),
        _ => Ok(report),
    }
}
