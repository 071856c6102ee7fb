//! Answering from the cache, as huggingface_hub does:
//! - `HF_HUB_OFFLINE=1` (the hive's, or a job's wish): downloads are answered from the cache alone,
//!   the revision through `refs/<revision>` (or a commit's own `snapshots/<commit>/`), then the
//!   snapshot's links. No network call is made at all; what is missing is named.
//! - a full commit id whose file is cached is answered without asking the hub (a commit never
//!   moves);
//! - a hub that cannot be reached (its name does not resolve, nothing listens, no connection
//!   within the connect timeout) falls back to what `refs/<revision>` points at, saying so in one
//!   line; only when the cache lacks the answer too does the download fail, naming
//!   `HF_HUB_OFFLINE`. A name that does not resolve is asked about once more, not five times.

use std::path::PathBuf;

use rbee_protocol::{escape, validate, ModelDownload, ModelRef};

use super::error::DownloadError;
use crate::cache::RepoDir;
use crate::jobs::JobCtx;

/// Why the cache had to answer alone: decides what a miss says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// `HF_HUB_OFFLINE` is set on the hive.
    Hive,
    /// The job asked for it (`HF_HUB_OFFLINE=1` in the keeper's environment).
    Job,
}

impl Why {
    fn missing(self, what: String) -> DownloadError {
        let (who, fix) = match self {
            Self::Hive => ("is set on the hive", "or restart the hive without HF_HUB_OFFLINE"),
            Self::Job => ("was asked for by this job", "or unset HF_HUB_OFFLINE where you run rbee"),
        };
        DownloadError::Offline(format!(
            "{what}; HF_HUB_OFFLINE {who}, so the hub was not asked: download it once online, {fix}"
        ))
    }
}

/// A cached answer: the path (a file's snapshot link or a snapshot directory) and its commit.
pub(crate) struct Cached {
    pub(crate) path: PathBuf,
    pub(crate) commit: String,
}

/// The cached answer to `req`: the file's snapshot path, or the snapshot directory for a
/// selection of a repo.
///
/// # Errors
/// [`DownloadError::Offline`] naming the repo, revision or file the cache lacks.
pub(crate) fn answer(cache: &std::path::Path, req: &ModelDownload, why: Why) -> Result<Cached, DownloadError> {
    let model: ModelRef = req.model_ref()?;
    let revision = req.revision();
    validate::revision(revision)?;
    let repo = RepoDir::new(cache, &model.repo);
    let id = escape(&model.repo);
    if !repo.root().is_dir() {
        return Err(why.missing(format!("`{id}` is not in the cache at {}", cache.display())));
    }
    let commit = repo.commit_of(revision).ok_or_else(|| {
        why.missing(format!("revision `{}` of `{id}` is not in the cache (no refs/{0})", escape(revision)))
    })?;
    let at = format!("`{id}` @ {} (commit {})", escape(revision), &commit[..commit.len().min(12)]);
    let cached = repo.snapshot_files(&commit);
    let file = match (&model.file, req.is_snapshot()) {
        (Some(file), _) => file.clone(),
        (None, true) => {
            let selection = req.selection();
            return if cached.iter().any(|f| selection.selects(f)) {
                Ok(Cached { path: repo.snapshot(&commit), commit })
            } else {
                Err(why.missing(format!("no file of {at} matching the selection is in the cache")))
            };
        }
        (None, false) => rbee_protocol::pick_gguf(&cached)
            .map(str::to_owned)
            .ok_or_else(|| why.missing(format!("no GGUF file of {at} is in the cache")))?,
    };
    if cached.contains(&file) {
        Ok(Cached { path: repo.pointer(&commit, &file), commit })
    } else {
        Err(why.missing(format!("`{}` of {at} is not in the cache", escape(&file))))
    }
}

/// A file asked for at a full commit id that the cache holds: its snapshot link, with no network
/// call (a commit never moves).
pub(crate) fn at_commit(cache: &std::path::Path, req: &ModelDownload) -> Option<PathBuf> {
    let revision = req.revision();
    let model = req.model_ref().ok()?;
    let file = model.file.as_deref()?;
    if !validate::is_commit(revision) || validate::revision(revision).is_err() {
        return None;
    }
    let pointer = RepoDir::new(cache, &model.repo).pointer(&revision.to_ascii_lowercase(), file);
    // The hardening issue's check of a cached blob's size against the size recorded at publish
    // belongs here, before the link is trusted.
    pointer.exists().then_some(pointer)
}

/// After the hub could not be reached (`err`): the cached answer through `refs/<revision>`, with
/// one line saying so, or `err` naming `HF_HUB_OFFLINE` when the cache cannot answer either.
pub(crate) fn fallback(
    ctx: &JobCtx,
    cache: &std::path::Path,
    req: &ModelDownload,
    err: &DownloadError,
) -> Result<PathBuf, DownloadError> {
    match answer(cache, req, Why::Hive) {
        Ok(Cached { path, commit }) => {
            let revision = req.revision();
            ctx.narrate(format!(
                "hub unreachable: using the cached {revision} ({}) — set HF_HUB_OFFLINE=1 to skip the check",
                &commit[..commit.len().min(7)]
            ));
            Ok(path)
        }
        Err(_) => Err(DownloadError::Unreachable(format!(
            "{err}; the cache holds no copy to fall back on: download it once the hub is reachable \
             (with HF_HUB_OFFLINE=1 only the cache is used, never the hub)"
        ))),
    }
}

/// How a network failure says the hub cannot be reached at all. curl's codes: 6 the name does
/// not resolve, 7 nothing listens (or the host is unreachable), 28 no connection within the
/// connect timeout (the only curl timeout the hub conversation sets).
const UNREACHABLE: [&str; 3] = ["[6] ", "[7] ", "[28] "];

/// Whether `e` says a host name does not resolve: asked once more at most, not `retries` times
/// (retry.rs), since a name that does not resolve will not soon.
pub(crate) fn unresolvable(e: &DownloadError) -> bool {
    matches!(e, DownloadError::Network { reason, .. } if reason.starts_with(UNREACHABLE[0]))
}

/// Whether `e` says the hub cannot be reached (what huggingface_hub answers from the cache).
pub(crate) fn unreachable(e: &DownloadError) -> bool {
    matches!(e, DownloadError::Network { reason, .. } if UNREACHABLE.iter().any(|code| reason.starts_with(code)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::error::network;

    #[test]
    fn unreachable_is_dns_refused_or_connect_timeout() {
        let dns = network("resolving `m`", "[6] Couldn't resolve host name (Could not resolve host: x)");
        let refused = network("resolving `m`", "[7] Couldn't connect to server");
        let slow = network("resolving `m`", "no answer within 30s");
        assert!(unreachable(&dns) && unreachable(&refused));
        assert!(unresolvable(&dns) && !unresolvable(&refused));
        assert!(!unreachable(&slow), "a hub that answers slowly is reachable");
        assert!(!unreachable(&DownloadError::RepoNotFound("a/b".into())));
    }
}
