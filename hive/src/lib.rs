//! `rbee-hive`: the hive daemon. A tide server that runs jobs (model downloads into the
//! HuggingFace cache) as `smol::Task`s, streams their events over SSE, and cancels them by
//! dropping the task.
//!
//! ```no_run
//! std::process::exit(rbee_hive::run(["rbee-hive", "--addr", "127.0.0.1:7835"]));
//! ```

pub mod cache;
mod config;
pub mod download;
pub mod http;
pub mod jobs;

use std::sync::Arc;

use anyhow::Context;
use rbee_protocol::{Event, Operation};

pub use config::Args;
use download::Downloader;
use jobs::Registry;

/// The hive: its jobs and what they need.
pub struct Hive {
    /// The job table.
    pub registry: Registry,
    /// Downloads (and the cache they fill).
    pub downloader: Downloader,
    /// Token every request must carry, when set.
    pub token: Option<String>,
    /// Who may address the hive (`Host`).
    pub access: http::Access,
}

impl Hive {
    /// Starts `op` as a job; returns its id.
    pub fn submit(self: Arc<Self>, op: Operation) -> String {
        let description = op.describe();
        let hive = self.clone();
        let id = self.registry.spawn(description.clone(), move |ctx| {
            // Claimed before the task first runs, dropped with it: a removal that follows the
            // POST at once already sees this download.
            let busy = match &op {
                Operation::ModelDownload(d) => Some(hive.downloader.busy().claim(&ctx.id, &d.model, d.file.as_deref())),
                _ => None,
            };
            async move {
                let _busy = busy;
                match op {
                    Operation::ModelDownload(d) => hive.downloader.run(ctx, d).await,
                    Operation::ModelList(_) => hive.list_job().await,
                    Operation::ModelRm(r) => hive.remove_job(&r).await,
                }
            }
        });
        eprintln!("rbee-hive: {id} started: {}", rbee_protocol::escape(&description));
        id
    }

    async fn list_job(&self) -> Event {
        let cache = self.downloader.cache().to_owned();
        match smol::unblock(move || cache::list(&cache)).await {
            Ok(listing) => Event::Done {
                message: format!("{} repos in the cache", listing.repos.len()),
                path: Some(listing.cache_dir.clone()),
                result: serde_json::to_value(listing).ok(),
            },
            Err(e) => Event::Error { message: e.to_string() },
        }
    }

    /// Removes `repo` (or only `file` of it; with `partial_only`, only unfinished downloads) from
    /// the cache: the one way both `DELETE /v1/models/…` and the remove job do it. A download in
    /// flight of what would be removed refuses the removal, naming its job; with `force` that job
    /// is cancelled first (and its task dropped) instead.
    ///
    /// # Errors
    /// [`cache::RemoveError`]: in use, a symlinked layout, or the OS refused.
    pub async fn remove_model(
        &self,
        repo: &str,
        file: Option<&str>,
        partial_only: bool,
        force: bool,
    ) -> Result<rbee_protocol::RemoveReport, cache::RemoveError> {
        while let Some(job) = self.downloader.busy().holder(repo, file) {
            if !force {
                let what = file.map_or_else(|| format!("`{repo}`"), |f| format!("`{repo}/{f}`"));
                return Err(cache::RemoveError::InUse { what, by: Some(job) });
            }
            eprintln!("rbee-hive: cancelling {job} to remove `{}` (force)", rbee_protocol::escape(repo));
            // Returns once the task is dropped, which drops its claim too.
            let _ = self.registry.cancel(&job).await;
        }
        let (cache, repo, file) = (self.downloader.cache().to_owned(), repo.to_owned(), file.map(str::to_owned));
        smol::unblock(move || cache::remove(&cache, &repo, file.as_deref(), partial_only)).await
    }

    async fn remove_job(&self, r: &rbee_protocol::ModelRemove) -> Event {
        match self.remove_model(&r.model, r.file.as_deref(), false, false).await {
            Ok(report) => Event::Done {
                message: format!(
                    "removed {} links, {} blobs, {} partials",
                    report.links, report.blobs, report.partials
                ),
                path: None,
                result: serde_json::to_value(report).ok(),
            },
            Err(e) => Event::Error { message: e.to_string() },
        }
    }
}

/// Parses `args`, then serves until killed. Returns the process exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match <Args as clap::Parser>::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    // Before any thread or socket exists: leave the caller's session.
    if args.detach {
        if let Err(e) = nix::unistd::setsid() {
            eprintln!("rbee-hive: --detach: could not start a new session ({e}); continuing in this one");
        }
    }
    match serve(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rbee-hive: error: {e:#}");
            1
        }
    }
}

fn serve(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let listener = std::net::TcpListener::bind(config.addr).with_context(|| {
        format!("cannot listen on {}: is another hive running there? pick another --addr", config.addr)
    })?;
    let hive = Arc::new(Hive {
        registry: Registry::new(config.retention),
        downloader: Downloader::new(config.download.clone())?,
        token: config.token.clone(),
        access: http::Access { addr: listener.local_addr()?, allowed_hosts: config.allowed_hosts.clone() },
    });
    eprintln!(
        "rbee-hive {} listening on http://{} (cache {}, upstream {})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?,
        config.download.cache.display(),
        config.download.endpoint
    );
    smol::block_on(http::serve(http::app(hive), listener, config.limits)).context("the HTTP server stopped")
}
