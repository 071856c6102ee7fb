//! Model downloads into the HF cache: resolve with HEAD, stream through surf chunk by chunk into
//! `blobs/<etag>.incomplete` (resuming what is there), verify size and sha256, then publish blob,
//! snapshot link and ref. A heartbeat task narrates "still downloading…" meanwhile.

mod bandwidth;
mod busy;
mod curl;
mod diskspace;
mod error;
mod fetch;
mod heartbeat;
mod offline;
mod partial;
mod ratelimit;
mod resolve;
mod select;
mod snapshot;
mod stall;
mod xet;

pub use busy::{Busy, BusyGuard};
pub use curl::Proxy;
pub use error::DownloadError;
pub use heartbeat::Heartbeat;
pub use snapshot::TOTAL;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbee_protocol::{validate, Event, ModelDownload};
use surf::Url;

use crate::cache::{BlobLock, RepoDir};
use crate::jobs::JobCtx;
use partial::Partial;
use resolve::{Digest, Resolved};

/// Everything a download needs; shared by all jobs.
pub struct Downloader {
    client: surf::Client,
    endpoint: Url,
    token: Option<String>,
    cache: PathBuf,
    heartbeat: Duration,
    stall: Duration,
    retries: u32,
    backoff_base: Duration,
    busy: Busy,
    write_batch: Option<usize>,
    // issue 13: offline mode, bandwidth caps, free-space override (tests).
    offline: bool,
    hive_rate: Option<bandwidth::Bucket>,
    job_rates: Mutex<HashMap<String, Arc<bandwidth::Bucket>>>,
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
}

impl Downloader {
    /// A downloader with its own HTTP client (no redirects followed, no overall timeout).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(s: Settings) -> anyhow::Result<Self> {
        let client = surf::Client::with_http_client(curl::CurlClient::new(s.proxy.clone())?);
        Ok(Self {
            client,
            endpoint: s.endpoint,
            token: s.token,
            cache: s.cache,
            heartbeat: s.heartbeat,
            stall: s.stall,
            retries: s.retries,
            backoff_base: s.backoff_base,
            busy: Busy::default(),
            write_batch: s.write_batch,
            offline: s.offline,
            hive_rate: s.max_rate.map(bandwidth::Bucket::new),
            job_rates: Mutex::default(),
            free_space: s.free_space,
        })
    }

    /// The cache directory.
    #[must_use]
    pub fn cache(&self) -> &std::path::Path {
        &self.cache
    }

    /// The hub it downloads from (`HF_ENDPOINT`).
    #[must_use]
    pub fn endpoint(&self) -> &surf::Url {
        &self.endpoint
    }

    /// Whether it sends an `HF_TOKEN` (the token itself never leaves the downloader).
    #[must_use]
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// What downloads are in flight (taken when a download job is spawned, see [`Busy`]).
    #[must_use]
    pub fn busy(&self) -> &Busy {
        &self.busy
    }

    /// Runs a download job; its output is the job's terminal event.
    pub async fn run(&self, ctx: JobCtx, req: ModelDownload) -> Event {
        if req.dry_run {
            return self.dry_run(&ctx, &req).await; // issue 13: snapshot.rs
        }
        let _rate = req.max_rate.map(|r| self.job_rate(&ctx.id, r)); // issue 13: bandwidth.rs
        let what = req.model.clone();
        let beat = format!("⏳ Still downloading {} from HuggingFace...", what.rsplit(':').next().unwrap_or(&what));
        let heartbeat = Heartbeat::start(&ctx, self.heartbeat, beat);
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

    async fn download(&self, ctx: &JobCtx, req: &ModelDownload) -> Result<PathBuf, DownloadError> {
        if self.offline {
            return offline::answer(&self.cache, req); // issue 13: offline.rs
        }
        let model = req.model_ref()?;
        let revision = req.revision();
        validate::revision(revision)?;
        let repo = RepoDir::new(&self.cache, &model.repo);
        let file = match (&model.file, req.is_snapshot()) {
            (Some(file), _) => file.clone(),
            (None, true) => return self.snapshot(ctx, &repo, req).await, // issue 13: snapshot.rs
            (None, false) => self.pick_gguf(ctx, &model.repo, revision).await?,
        };
        ctx.narrate(format!("📥 Downloading {}:{file} @ {revision}", model.repo));
        self.file(ctx, &repo, &model.repo, revision, &file).await
    }

    /// rbee's pick for a bare `org/repo`: one GGUF, by [`rbee_protocol::GGUF_PREFERENCE`].
    async fn pick_gguf(&self, ctx: &JobCtx, id: &str, revision: &str) -> Result<String, DownloadError> {
        let (_, files) = self.list_files(id, revision).await?;
        let Some(pick) = rbee_protocol::pick_gguf(&files).map(str::to_owned) else {
            return Err(DownloadError::NoGguf { repo: id.to_owned(), files: files.len() });
        };
        let others: Vec<&str> =
            files.iter().map(String::as_str).filter(|f| f.ends_with(".gguf") && *f != pick).collect();
        ctx.narrate(format!(
            "🔎 `{id}` names no file: picked `{pick}` (rbee prefers Q4_K_M, Q5_K_M, Q4_0, Q5_0, Q8_0, F16)"
        ));
        if !others.is_empty() {
            ctx.narrate(format!("   other GGUF files: {}; name one as `{id}:<file>`", others.join(", ")));
        }
        Ok(pick)
    }

    /// One file: resolve, reuse the cache when possible, else fetch, verify and publish.
    async fn file(
        &self,
        ctx: &JobCtx,
        repo: &RepoDir,
        id: &str,
        revision: &str,
        file: &str,
    ) -> Result<PathBuf, DownloadError> {
        let res = self.resolve_retrying(ctx, id, revision, file).await?;
        repo.write_ref(revision, &res.commit)?;
        let pointer = repo.pointer(&res.commit, file);
        if pointer.exists() {
            ctx.narrate(format!("✔️  `{file}` is already in the cache"));
            return Ok(pointer);
        }
        let lock_path = repo.lock_path(&res.etag);
        let _lock = BlobLock::acquire(&lock_path, || {
            ctx.narrate(format!("⏳ `{file}` is being downloaded by another job; waiting for it"));
        })
        .await?;
        if !repo.blob(&res.etag).exists() {
            // issue 13: refuse what the disk cannot hold (diskspace.rs)
            let have = std::fs::metadata(repo.incomplete(&res.etag)).map_or(0, |m| m.len());
            diskspace::check(&self.cache, res.size.unwrap_or(0).saturating_sub(have), self.free_space)?;
            repo.write_meta(&res.etag, &crate::cache::PartialMeta { file: file.to_owned(), size: res.size });
            self.fetch_blob(ctx, repo, file, &res).await?;
        } else {
            ctx.narrate(format!("✔️  blob of `{file}` is already in the cache"));
        }
        Ok(repo.link(&res.commit, file, &res.etag)?)
    }

    async fn resolve_retrying(
        &self,
        ctx: &JobCtx,
        id: &str,
        revision: &str,
        file: &str,
    ) -> Result<Resolved, DownloadError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.resolve(id, revision, file).await {
                Err(e) if e.retryable() && attempt <= self.retries => {
                    let wait = if let Some(wait) = e.rate_limit_wait() {
                        ctx.narrate(ratelimit::narration(wait, attempt, self.retries)); // issue 13
                        wait
                    } else {
                        let wait = self.backoff(attempt);
                        ctx.narrate(format!(
                            "🔁 retry {attempt}/{} resolving `{file}` in {} ms: {e}",
                            self.retries,
                            wait.as_millis()
                        ));
                        wait
                    };
                    smol::Timer::after(wait).await;
                }
                Err(e) if e.retryable() => return Err(e.after_attempts(attempt)),
                other => return other,
            }
        }
    }

    async fn fetch_blob(&self, ctx: &JobCtx, repo: &RepoDir, file: &str, res: &Resolved) -> Result<(), DownloadError> {
        let path = repo.incomplete(&res.etag);
        let mut partial = Partial::open(&path, res.size, ctx.outstanding.clone(), self.write_batch).await?;
        if let Err(e) = self.fetch(ctx, file, res, &mut partial).await {
            if matches!(e, DownloadError::Oversized { .. }) {
                let _ = partial.flush().await;
                drop(partial);
                let _ = std::fs::remove_file(&path);
            }
            return Err(e);
        }
        let (size, sha) = partial.finish().await?;
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
                Digest::Sha256(want) => wrong("sha256", want, sha),
                Digest::GitSha1(want) => {
                    let p = path.clone();
                    let actual =
                        smol::unblock(move || resolve::git_blob_sha1(&p)).await.map_err(crate::cache::at(&path))?;
                    wrong("git blob sha1", want, actual)
                }
                Digest::Unverifiable => None,
            }
        };
        if let Some(e) = mismatch {
            let _ = std::fs::remove_file(&path);
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
        repo.finish_blob(&res.etag)?;
        Ok(())
    }

    /// Registers job `id`'s own bandwidth cap until the guard drops.
    fn job_rate(&self, id: &str, bytes_per_sec: u64) -> JobRate<'_> {
        let bucket = Arc::new(bandwidth::Bucket::new(bytes_per_sec));
        self.job_rates.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.to_owned(), bucket);
        JobRate { downloader: self, id: id.to_owned() }
    }

    /// Waits until `n` more bytes of job `id` are within the hive's and the job's caps.
    pub(crate) async fn pace(&self, id: &str, n: usize) {
        if let Some(hive) = &self.hive_rate {
            hive.pace(n).await;
        }
        let job = self.job_rates.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned();
        if let Some(job) = job {
            job.pace(n).await;
        }
    }

    /// The slowest rate a download may be capped to (the stall detector's floor follows it).
    pub(crate) fn cap(&self, id: &str) -> Option<u64> {
        let job = self.job_rates.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).map(|b| b.rate());
        [job, self.hive_rate.as_ref().map(bandwidth::Bucket::rate)].into_iter().flatten().min()
    }

    /// A request to the hub, with HF_TOKEN when set.
    fn request(&self, method: surf::http::Method, url: &Url) -> surf::RequestBuilder {
        let req = surf::RequestBuilder::new(method, url.clone());
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }
}

/// A job's bandwidth cap, removed when the job ends (or is dropped).
struct JobRate<'a> {
    downloader: &'a Downloader,
    id: String,
}

impl Drop for JobRate<'_> {
    fn drop(&mut self) {
        self.downloader.job_rates.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.id);
    }
}
