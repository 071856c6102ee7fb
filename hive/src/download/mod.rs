//! Model downloads into the HF cache. [`Downloader`] reads as the steps of one file:
//! resolve (the `hub` conversation) → lock the blob → transfer (in parts over several
//! connections, or one stream; hashed on the way) → verify → publish blob, snapshot link and ref.
//! One `retry` policy covers every step; a heartbeat task narrates "still downloading…"
//! meanwhile.

mod bandwidth;
mod busy;
mod curl;
mod diskspace;
mod error;
mod fds;
mod heartbeat;
mod hub;
mod offline;
mod ratelimit;
mod retry;
mod select;
mod snapshot;
mod stall;
mod transfer;
mod upstream;
mod verify;
mod wire;
mod xet;

pub use busy::{Busy, BusyGuard};
pub use curl::Proxy;
pub use error::DownloadError;
pub use heartbeat::Heartbeat;
pub use snapshot::TOTAL;

use std::path::PathBuf;
use std::time::Duration;

use rbee_protocol::{validate, Event, ModelDownload};
use surf::Url;

use crate::cache::{BlobLock, BlobState, PartialMeta, RepoDir};
use crate::jobs::{JobCtx, Slots};
use bandwidth::Pacer;
use hub::{Hub, Resolved};
use retry::{Failed, Retry, Step};
use transfer::Transfer;

/// Everything a download needs; shared by all jobs.
pub struct Downloader {
    hub: Hub,
    /// `--max-downloads`: transfers beyond it wait, queued (`jobs/queue.rs`).
    slots: Slots,
    /// Tests only: descriptors held open so the transfers' own ones are numbered above them.
    _held_fds: Vec<std::fs::File>,
    cache: PathBuf,
    heartbeat: Duration,
    retry: Retry,
    max_parts: usize,
    busy: Busy,
    write_batch: Option<usize>,
    /// `HF_HUB_OFFLINE`: answer from the cache alone.
    offline: bool,
    /// Bandwidth caps (the hive's and each job's).
    pacer: Pacer,
    /// Tests only: the free space the disk-space check sees.
    free_space: Option<u64>,
}

/// Download settings (from the hive's flags and env).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The hub, e.g. `https://huggingface.co`.
    pub endpoint: Url,
    /// HF_TOKEN.
    pub token: Option<String>,
    /// HF cache directory.
    pub cache: PathBuf,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Longest wait for a byte before retrying.
    pub stall: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First retry delay (doubles each time, at most 10 s).
    pub backoff_base: Duration,
    /// Most upstream connections one file may use at once (`--max-parts`).
    pub max_parts: usize,
    /// Tests only: a fixed disk write batch size in bytes (`None`: adaptive).
    pub write_batch: Option<usize>,
    /// `HF_HUB_OFFLINE`: answer downloads from the cache alone, never calling the hub.
    pub offline: bool,
    /// The hive's bandwidth cap, bytes/s, shared by every job.
    pub max_rate: Option<u64>,
    /// Tests only: the free space the disk-space check sees (`None`: measured).
    pub free_space: Option<u64>,
    /// Proxy for hub and CDN traffic (`None`: none, whatever the environment says).
    pub proxy: Option<Proxy>,
    /// `--allow-unverified`: accept files whose ETag is neither a sha256 nor a git sha1.
    pub allow_unverified: bool,
    /// `--max-downloads`: download jobs transferring at once.
    pub max_downloads: usize,
    /// Tests only: descriptors to hold open (`fds.rs`).
    pub hold_fds: usize,
}

impl Downloader {
    /// A downloader with its own HTTP client (no redirects followed, no overall timeout).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(s: Settings) -> anyhow::Result<Self> {
        Ok(Self {
            hub: Hub::new(s.endpoint, s.token, s.proxy, s.allow_unverified)?,
            slots: Slots::new(s.max_downloads),
            _held_fds: fds::raise_and_hold(s.hold_fds)?,
            cache: s.cache,
            heartbeat: s.heartbeat,
            retry: Retry { retries: s.retries, backoff_base: s.backoff_base, stall: s.stall },
            max_parts: s.max_parts.max(1),
            busy: Busy::default(),
            write_batch: s.write_batch,
            offline: s.offline,
            pacer: Pacer::new(s.max_rate),
            free_space: s.free_space,
        })
    }

    /// The hub it downloads from (`HF_ENDPOINT`).
    #[must_use]
    pub fn endpoint(&self) -> &surf::Url {
        self.hub.endpoint()
    }

    /// Whether it sends an `HF_TOKEN` (the token itself never leaves the downloader).
    #[must_use]
    pub fn has_token(&self) -> bool {
        self.hub.has_token()
    }

    /// The cache directory.
    #[must_use]
    pub fn cache(&self) -> &std::path::Path {
        &self.cache
    }

    /// Bytes the hive may still write on the cache's filesystem, as the space check measures
    /// them (`None` when it cannot be told).
    #[must_use]
    pub fn free_bytes(&self) -> Option<u64> {
        diskspace::free_bytes(&self.cache)
    }

    /// What downloads are in flight (taken when a download job is spawned, see [`Busy`]).
    #[must_use]
    pub fn busy(&self) -> &Busy {
        &self.busy
    }

    /// Runs a download job; its output is the job's terminal event.
    pub async fn run(&self, ctx: JobCtx, req: ModelDownload) -> Event {
        if req.dry_run {
            return self.dry_run(&ctx, &req).await; // snapshot.rs
        }
        let _slot = if self.offline { None } else { Some(self.slots.acquire(&ctx, self.heartbeat).await) };
        let _rate = req.max_rate.map(|r| self.pacer.job(&ctx.id, r)); // bandwidth.rs
        let what = req.model.clone();
        let name = what.rsplit(':').next().unwrap_or(&what);
        let beat = format!("⏳ Still downloading {name} from HuggingFace...");
        let waiting = format!("⏳ Still working on {name}: nothing is being downloaded yet...");
        let heartbeat = Heartbeat::start(&ctx, self.heartbeat, beat, waiting);
        let result = self.download(&ctx, &req).await;
        heartbeat.stop().await;
        match result {
            Ok(path) => Event::Done {
                message: format!("✅ downloaded {what} to {}", path.display()),
                path: Some(path.display().to_string()),
                result: None,
                lines: Vec::new(),
            },
            Err(e) => Event::Error { message: format!("download of {what} failed: {e}") },
        }
    }

    /// The cache's answer when it may answer alone (offline, or a cached full commit); else the
    /// hub's, falling back to the cache when the hub cannot be reached (offline.rs).
    async fn download(&self, ctx: &JobCtx, req: &ModelDownload) -> Result<PathBuf, DownloadError> {
        if self.offline || req.offline {
            let why = if self.offline { offline::Why::Hive } else { offline::Why::Job };
            return offline::answer(&self.cache, req, why).map(|c| c.path);
        }
        if let Some(path) = offline::at_commit(&self.cache, req) {
            ctx.narrate(format!("✔️  `{}` is in the cache at that commit; the hub was not asked", req.model));
            return Ok(path);
        }
        match self.online(ctx, req).await {
            Err(e) if offline::unreachable(&e) => offline::fallback(ctx, &self.cache, req, &e),
            answer => answer,
        }
    }

    async fn online(&self, ctx: &JobCtx, req: &ModelDownload) -> Result<PathBuf, DownloadError> {
        let model = req.model_ref()?;
        let revision = req.revision();
        validate::revision(revision)?;
        let repo = RepoDir::new(&self.cache, &model.repo);
        let file = match (&model.file, req.is_snapshot()) {
            (Some(file), _) => file.clone(),
            (None, true) => return self.snapshot(ctx, &repo, req).await,
            (None, false) => self.pick_gguf(ctx, &model.repo, revision).await?,
        };
        ctx.narrate(format!("📥 Downloading {}:{file} @ {revision}", model.repo));
        self.file(ctx, &repo, &model.repo, revision, &file, self.parts_for(req)).await
    }

    /// rbee's pick for a bare `org/repo`: one GGUF, by [`rbee_protocol::GGUF_PREFERENCE`].
    async fn pick_gguf(&self, ctx: &JobCtx, id: &str, revision: &str) -> Result<String, DownloadError> {
        // The listing under the retry policy (a 429 waits as the hub says), as snapshots read it.
        let files: Vec<String> =
            self.listing(ctx, id, revision).await?.files.into_iter().map(|s| s.rfilename).collect();
        let Some(pick) = rbee_protocol::pick_gguf(&files).map(str::to_owned) else {
            return Err(DownloadError::NoGguf { repo: id.to_owned(), files: files.len() });
        };
        let is_gguf = |f: &str| f.to_ascii_lowercase().ends_with(".gguf");
        let others: Vec<&str> = files.iter().map(String::as_str).filter(|f| is_gguf(f) && *f != pick).collect();
        ctx.narrate(format!(
            "🔎 `{id}` names no file: picked `{pick}` (rbee prefers Q4_K_M, Q5_K_M, Q4_0, Q5_0, Q8_0, F16)"
        ));
        if !others.is_empty() {
            ctx.narrate(format!("   other GGUF files: {}; name one as `{id}:<file>`", others.join(", ")));
        }
        Ok(pick)
    }

    /// HEADs `file` on the hub (the mirror's pull-through asks what a miss is).
    pub(crate) async fn resolve(&self, repo: &str, revision: &str, file: &str) -> Result<Resolved, DownloadError> {
        self.hub.resolve(repo, revision, file).await
    }

    /// A revision's commit and files with their sizes, blob ids and LFS sha256 on the hub (the
    /// mirror's pull-through tree).
    pub(crate) async fn list_tree(
        &self,
        repo: &str,
        revision: &str,
    ) -> Result<(String, Vec<crate::mirror::tree::TreeFile>), DownloadError> {
        let listing = self.hub.listing(repo, revision).await?;
        let files = listing.files.into_iter().map(|s| crate::mirror::tree::TreeFile {
            size: s.lfs.as_ref().map(|l| l.size).or(s.size).unwrap_or(0),
            oid: s.blob_id.unwrap_or_default(),
            lfs: s.lfs.map(|l| l.sha256),
            path: s.rfilename,
        });
        Ok((listing.commit, files.collect()))
    }

    /// Most connections for this job: the hive's `--max-parts`, or fewer when the job asks.
    fn parts_for(&self, req: &ModelDownload) -> usize {
        let asked = req.connections.and_then(|c| usize::try_from(c).ok()).filter(|c| *c > 0);
        asked.map_or(self.max_parts, |c| c.min(self.max_parts))
    }

    /// One file: resolve → (reuse the cache, or) lock → transfer → verify → publish.
    async fn file(
        &self,
        ctx: &JobCtx,
        repo: &RepoDir,
        id: &str,
        revision: &str,
        file: &str,
        max_parts: usize,
    ) -> Result<PathBuf, DownloadError> {
        let res = self.resolve_retrying(ctx, id, revision, file).await?;
        repo.write_ref(revision, &res.commit)?;
        let pointer = repo.pointer(&res.commit, file);
        // A hit only when the blob is as long as the hub says (cache/intact.rs).
        if repo.cached(&pointer, &res.etag, res.size) {
            ctx.narrate(format!("✔️  `{file}` is already in the cache"));
            return Ok(pointer);
        }
        let _lock = BlobLock::acquire(repo, &res.etag, || {
            ctx.narrate(format!("⏳ `{file}` is being downloaded by another job; waiting for it"));
        })
        .await?;
        match repo.blob_state(&res.etag, res.size) {
            BlobState::Whole => ctx.narrate(format!("✔️  blob of `{file}` is already in the cache")),
            state => {
                if let BlobState::Wrong(len) = state {
                    ctx.narrate(format!(
                        "⚠️  the cached blob of `{file}` holds {len} bytes, not {}: fetching it again (resuming)",
                        res.size.map_or_else(|| "the size recorded".to_owned(), |s| s.to_string())
                    ));
                    repo.reopen(&res.etag)?;
                }
                self.fetch(ctx, repo, file, &res, max_parts).await?;
            }
        }
        Ok(repo.link(&res.commit, file, &res.etag)?)
    }

    /// The transfer of a file the cache lacks → verify → publish (data, then name, made durable).
    async fn fetch(
        &self,
        ctx: &JobCtx,
        repo: &RepoDir,
        file: &str,
        res: &Resolved,
        max_parts: usize,
    ) -> Result<(), DownloadError> {
        // Refuse what the disk cannot hold, before the first byte (diskspace.rs).
        let have = transfer::fetched_before(repo, &res.etag, res.size);
        diskspace::check(&self.cache, res.size.unwrap_or(0).saturating_sub(have), self.free_space)?;
        repo.write_meta(&res.etag, &PartialMeta { file: file.to_owned(), size: res.size }, false)?;
        let transfer = Transfer {
            pacer: &self.pacer,
            hub: &self.hub,
            retry: self.retry,
            ctx,
            repo,
            file,
            res,
            write_batch: self.write_batch,
            max_parts,
        };
        let got = transfer.run().await?;
        if let Err(e) = verify::verify(ctx, file, res, &got).await {
            repo.remove_file(&got.path);
            if got.in_parts {
                repo.remove_parts(&res.etag);
            }
            return Err(e);
        }
        repo.finish_blob(&res.etag, &got.path)?;
        // The size a later hit checks against when the hub is not asked.
        Ok(repo.write_meta(&res.etag, &PartialMeta { file: file.to_owned(), size: Some(got.size) }, true)?)
    }

    async fn resolve_retrying(
        &self,
        ctx: &JobCtx,
        id: &str,
        revision: &str,
        file: &str,
    ) -> Result<Resolved, DownloadError> {
        let hub = &self.hub;
        let resolve = || async move {
            hub.resolve(id, revision, file).await.map_err(|e| Failed::Retry(format!("resolving `{file}`"), e))
        };
        self.retry.run(ctx, &mut Step(resolve)).await
    }
}
