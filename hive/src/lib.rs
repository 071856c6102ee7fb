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
mod shutdown;

use std::sync::Arc;

use anyhow::Context;

pub use config::Args;
use download::Downloader;
use jobs::Registry;
use std::io::Write;

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
    /// `HF_HUB_OFFLINE`: downloads answered from the cache alone (shown on the page).
    pub offline: bool,
}

/// Parses `args`, then serves until SIGINT or SIGTERM (0 after a graceful stop) or until killed.
/// Returns the process exit code.
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
    init_log(&args.log_level);
    // Before any thread or socket exists: leave the caller's session.
    if args.detach {
        if let Err(e) = nix::unistd::setsid() {
            log::warn!("--detach: could not start a new session ({e}); continuing in this one");
        }
    }
    match serve(args) {
        Ok(()) => 0,
        Err(e) => {
            // `rbee` quotes this line when a hive it started dies (e.g. the port is taken).
            log::error!("error: {e:#}");
            1
        }
    }
}

/// The hive's log on stderr: `2025-01-31T12:00:00Z INFO  rbee-hive: <message>`, filtered by
/// `--log-level` / `RBEE_LOG`. Messages never carry a token (the hive never formats one).
fn init_log(filter: &str) {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(filter).target(env_logger::Target::Stderr).format(|buf, record| {
        let level = record.level();
        writeln!(buf, "{} {level:<5} rbee-hive: {}", buf.timestamp_seconds(), record.args())
    });
    // A second init (tests running `run` twice in one process) keeps the first logger.
    let _ = builder.try_init();
}

fn serve(args: Args) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let listener = std::net::TcpListener::bind(config.addr).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}; is another program using the port? pick another --addr (RBEE_HIVE_ADDR)",
            config.addr
        )
    })?;
    let hive = Arc::new(Hive {
        registry: Registry::new(config.retention),
        downloader: Downloader::new(config.download.clone())?,
        token: config.token.clone(),
        access: http::Access { addr: listener.local_addr()?, allowed_hosts: config.allowed_hosts.clone() },
        pull: mirror::Pull::new(config.mirror_upstream),
        offline: config.download.offline,
    });
    log::info!(
        "rbee-hive {} listening on http://{} (cache {}, upstream {}, HF_TOKEN {}); HF mirror at http://{}{} ({})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?,
        config.download.cache.display(),
        config.download.endpoint,
        if config.download.token.is_some() { "set" } else { "not set" },
        listener.local_addr()?,
        rbee_protocol::routes::MIRROR,
        if config.mirror_upstream { "pull-through from upstream" } else { "cache only" },
    );
    let signals = shutdown::signals();
    let stop = shutdown::on_signal(hive.clone(), signals);
    let served = http::serve(http::app(hive), listener, config.limits);
    smol::block_on(futures_lite::future::or(served, async {
        stop.await;
        Ok(())
    }))
    .context("the HTTP server stopped")
}
