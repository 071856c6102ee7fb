//! Which files of a revision a download takes, and how big they are: `GET
//! /api/models/{repo}/revision/{revision}?blobs=true` (siblings with `size`, `blobId` and `lfs`),
//! filtered by the request's include / exclude patterns ([`rbee_protocol::select`]), each
//! checked against the cache: already there, partly there (`.incomplete`), or still to fetch.
//! `--dry-run` shows this plan and stops; a real download checks it against the free space.
//! Reading the plan never writes the cache.

use rbee_protocol::text;
use serde::Deserialize;

use super::error::DownloadError;
use super::retry::{Failed, Step};
use super::Downloader;
use crate::cache::RepoDir;
use crate::jobs::JobCtx;

/// A file of the listing.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Sibling {
    pub(crate) rfilename: String,
    #[serde(default)]
    pub(crate) size: Option<u64>,
    #[serde(default, rename = "blobId")]
    pub(crate) blob_id: Option<String>,
    #[serde(default)]
    pub(crate) lfs: Option<Lfs>,
}

/// The LFS part of a sibling.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Lfs {
    pub(crate) sha256: String,
    pub(crate) size: u64,
}

impl Sibling {
    /// The blob name the file gets in the cache: sha256 for LFS, git blob id otherwise.
    fn etag(&self) -> Option<&str> {
        let etag = self.lfs.as_ref().map(|l| l.sha256.as_str()).or(self.blob_id.as_deref())?;
        (!etag.is_empty() && etag.bytes().all(|b| b.is_ascii_hexdigit())).then_some(etag)
    }

    fn len(&self) -> Option<u64> {
        self.lfs.as_ref().map(|l| l.size).or(self.size)
    }
}

/// A revision's commit and files.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    pub(crate) commit: String,
    pub(crate) files: Vec<Sibling>,
}

/// One file of a plan.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Planned {
    pub(crate) file: String,
    pub(crate) size: Option<u64>,
    /// The snapshot link or the blob is in the cache: nothing to fetch.
    pub(crate) cached: bool,
    /// Bytes of an unfinished download already there.
    pub(crate) partial: u64,
    pub(crate) to_fetch: u64,
}

/// What a download would do.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) commit: String,
    pub(crate) files: Vec<Planned>,
}

impl Plan {
    pub(crate) fn total(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }

    pub(crate) fn to_fetch(&self) -> u64 {
        self.files.iter().map(|f| f.to_fetch).sum()
    }

    /// The dry run's lines: one per file (size, state), padded.
    pub(crate) fn lines(&self) -> Vec<String> {
        let width = self.files.iter().map(|f| text::one_line(&f.file).chars().count()).max().unwrap_or(0);
        self.files
            .iter()
            .map(|f| {
                let size = f.size.map_or_else(|| "?".to_owned(), text::bytes);
                let state = match (f.cached, f.partial) {
                    (true, _) => "cached".to_owned(),
                    (false, 0) => "to fetch".to_owned(),
                    (false, p) => format!("to fetch ({} of it already downloaded)", text::bytes(p)),
                };
                format!("   {:<width$}  {size:>10}  {state}", text::one_line(&f.file))
            })
            .collect()
    }

    pub(crate) fn json(&self, repo: &str, revision: &str) -> serde_json::Value {
        serde_json::json!({
            "repo": repo, "revision": revision, "commit": self.commit, "files": self.files,
            "total": self.total(), "to_fetch": self.to_fetch(),
            "cached": self.files.iter().filter(|f| f.cached).count(),
        })
    }
}

/// The plan for `names` of `listing` against the cache (reads only).
pub(crate) fn plan(repo: &RepoDir, listing: &Listing, names: &[String]) -> Plan {
    let files = names
        .iter()
        .filter_map(|name| listing.files.iter().find(|s| &s.rfilename == name))
        .map(|s| {
            let etag = s.etag();
            let cached = repo.cached(&repo.pointer(&listing.commit, &s.rfilename), etag.unwrap_or_default(), s.len())
                || etag.is_some_and(|e| repo.blob_state(e, s.len()) == crate::cache::BlobState::Whole);
            let partial = match etag {
                Some(e) if !cached => super::transfer::fetched_before(repo, e, s.len()),
                _ => 0,
            };
            let size = s.len();
            let to_fetch = if cached { 0 } else { size.unwrap_or(0).saturating_sub(partial) };
            Planned { file: s.rfilename.clone(), size, cached, partial, to_fetch }
        })
        .collect();
    Plan { commit: listing.commit.clone(), files }
}

impl Downloader {
    /// The revision's listing with sizes ([`super::hub::Hub::listing`]), under the retry policy
    /// (a 429 waits as the hub says).
    pub(crate) async fn listing(&self, ctx: &JobCtx, repo: &str, revision: &str) -> Result<Listing, DownloadError> {
        let hub = &self.hub;
        let listing = || async move {
            hub.listing(repo, revision).await.map_err(|e| Failed::Retry(format!("listing `{repo}`"), e))
        };
        self.retry.run(ctx, &mut Step(listing)).await
    }
}
