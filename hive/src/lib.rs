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
pub mod mirror;
pub mod models;
mod operations;

use std::sync::Arc;

use anyhow::Context;

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
    /// Pull-through of the mirror routes (`--mirror-upstream`).
    pub pull: mirror::Pull,
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
        pull: mirror::Pull::new(config.mirror_upstream),
    });
    eprintln!(
        "rbee-hive {} listening on http://{} (cache {}, upstream {}); HF mirror at http://{}{} ({})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?,
        config.download.cache.display(),
        config.download.endpoint,
        listener.local_addr()?,
        rbee_protocol::routes::MIRROR,
        if config.mirror_upstream { "pull-through from upstream" } else { "cache only" },
    );
    smol::block_on(http::serve(http::app(hive), listener, config.limits)).context("the HTTP server stopped")
}
