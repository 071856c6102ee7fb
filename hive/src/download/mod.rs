//! Model downloads into the HF cache: resolve with HEAD, stream through surf chunk by chunk into
//! `blobs/<etag>.incomplete` (resuming what is there), verify size and sha256, then publish blob,
//! snapshot link and ref. A heartbeat task narrates "still downloading…" meanwhile.

mod curl;
mod error;
mod fetch;
mod heartbeat;
mod partial;
mod resolve;

pub use error::DownloadError;
pub use heartbeat::Heartbeat;

use std::path::PathBuf;
use std::time::Duration;

use rbee_protocol::{validate, Event, ModelDownload};
use surf::Url;

use crate::cache::{BlobLock, RepoDir};
use crate::jobs::JobCtx;
use partial::Partial;
use resolve::Resolved;

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
    write_batch: Option<usize>,
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
}

impl Downloader {
    /// A downloader with its own HTTP client (no redirects followed, no overall timeout).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(s: Settings) -> anyhow::Result<Self> {
        let client = surf::Client::with_http_client(curl::CurlClient::new()?);
        Ok(Self {
            client,
            endpoint: s.endpoint,
            token: s.token,
            cache: s.cache,
            heartbeat: s.heartbeat,
            stall: s.stall,
            retries: s.retries,
            backoff_base: s.backoff_base,
            write_batch: s.write_batch,
        })
    }

    /// The cache directory.
    #[must_use]
    pub fn cache(&self) -> &std::path::Path {
        &self.cache
    }

    /// Runs a download job; its output is the job's terminal event.
    pub async fn run(&self, ctx: JobCtx, req: ModelDownload) -> Event {
        let heartbeat = Heartbeat::start(&ctx, self.heartbeat);
        let result = self.download(&ctx, &req).await;
        heartbeat.stop().await;
        match result {
            Ok(path) => Event::Done {
                message: format!("✅ downloaded {} to {}", req.model, path.display()),
                path: Some(path.display().to_string()),
                result: None,
            },
            Err(e) => Event::Error { message: format!("download of {} failed: {e}", req.model) },
        }
    }

    async fn download(&self, ctx: &JobCtx, req: &ModelDownload) -> Result<PathBuf, DownloadError> {
        validate::repo_id(&req.model)?;
        validate::revision(req.revision())?;
        let repo = RepoDir::new(&self.cache, &req.model);
        if let Some(file) = &req.file {
            validate::file_name(file)?;
            ctx.narrate(format!("📥 downloading {}/{file} @ {}", req.model, req.revision()));
            return self.file(ctx, &repo, &req.model, req.revision(), file).await;
        }
        let (commit, files) = self.list_files(&req.model, req.revision()).await?;
        ctx.narrate(format!("📥 downloading {} files of {} @ {}", files.len(), req.model, req.revision()));
        repo.write_ref(req.revision(), &commit)?;
        for file in &files {
            validate::file_name(file)?;
            self.file(ctx, &repo, &req.model, &commit, file).await?;
        }
        Ok(repo.snapshot(&commit))
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
                    let wait = self.backoff(attempt);
                    ctx.narrate(format!(
                        "🔁 retry {attempt}/{} resolving `{file}` in {} ms: {e}",
                        self.retries,
                        wait.as_millis()
                    ));
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
        self.fetch(ctx, file, res, &mut partial).await?;
        let (size, sha) = partial.finish().await?;
        let mismatch = if res.size.is_some_and(|s| s != size) {
            Some(DownloadError::SizeMismatch { file: file.into(), expected: res.size.unwrap_or(0), actual: size })
        } else {
            res.sha256().filter(|want| *want != sha).map(|want| DownloadError::HashMismatch {
                file: file.into(),
                expected: want.to_owned(),
                actual: sha.clone(),
            })
        };
        if let Some(e) = mismatch {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        ctx.narrate(format!(
            "🔒 verified `{file}`: {size} bytes{}",
            if res.sha256().is_some() { ", sha256 ok" } else { "" }
        ));
        repo.finish_blob(&res.etag)?;
        Ok(())
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
