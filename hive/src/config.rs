//! Command-line flags and environment of the hive (the only place env is read).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

use crate::download::Settings;
use crate::jobs::Retention;

/// `rbee-hive` flags.
#[derive(Debug, Parser)]
#[command(name = "rbee-hive", version, about = "rbee hive: runs model downloads as cancellable jobs over HTTP + SSE")]
pub struct Args {
    /// Address to listen on. Binding beyond loopback requires --token.
    #[arg(long, env = "RBEE_HIVE_ADDR", default_value = rbee_protocol::DEFAULT_HIVE_ADDR)]
    pub addr: SocketAddr,
    /// HF cache directory (default: $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
    /// ~/.cache/huggingface/hub, as huggingface_hub resolves it).
    #[arg(long, env = "HF_HUB_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// HuggingFace endpoint.
    #[arg(long, env = "HF_ENDPOINT", default_value = rbee_protocol::hf::DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// HuggingFace token, sent to the endpoint host only.
    #[arg(long = "hf-token", env = "HF_TOKEN", hide_env_values = true)]
    pub hf_token: Option<String>,
    /// Start in a new session, away from the terminal that started it (setsid): a Ctrl+C there never
    /// reaches the hive. `rbee` passes it when it starts a local hive.
    #[arg(long)]
    pub detach: bool,
    /// Token clients must send as `Authorization: Bearer` (required off loopback): at least 16
    /// visible ASCII characters, no whitespace.
    #[arg(long, env = "RBEE_HIVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Extra host names this hive answers to in `Host` (comma-separated), beyond loopback names and
    /// addresses: e.g. a name in /etc/hosts that points at 127.0.0.1. Any other `Host` gets 403, so a
    /// DNS-rebinding web page cannot reach the hive.
    #[arg(long, env = "RBEE_HIVE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Mirror routes (`/hf/…`, see the README's "Many machines"): fetch what the cache lacks from
    /// this hive's own HF_ENDPOINT as a download job, and serve it while it downloads. Off: the
    /// mirror answers only from the cache (404 for the rest).
    #[arg(long, env = "RBEE_HIVE_MIRROR_UPSTREAM")]
    pub mirror_upstream: bool,
    /// Seconds a client may take to send a request's head and body (a stalled request is closed);
    /// also how long an idle keep-alive connection is kept.
    #[arg(long, default_value_t = 10.0)]
    pub request_timeout_secs: f64,
    /// Connections served at once; further clients wait in the kernel's accept queue.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Most upstream connections one file may use at once: a big file travels as byte ranges over
    /// up to this many (one first; 4, then doubling while throughput rises, once one connection
    /// leaves the hive idle); 1 fetches every file as one stream. A job may ask for fewer (`connections`). Not `--max-connections`, which
    /// caps the hive's own HTTP server.
    #[arg(long, env = "RBEE_HIVE_MAX_PARTS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_parts: u32,
    /// Seconds between "still downloading" heartbeats.
    #[arg(long, default_value_t = 10.0)]
    pub heartbeat_secs: f64,
    /// Seconds without a byte before a download attempt is retried.
    #[arg(long, default_value_t = 30.0)]
    pub stall_secs: f64,
    /// Retries after a failed attempt (resets, stalls, 5xx).
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// First retry delay in milliseconds (doubles per retry, at most 10 s).
    #[arg(long, default_value_t = 500)]
    pub retry_backoff_ms: u64,
    /// What the log (stderr) shows: error, warn, info, debug, trace or off; or an env_logger filter
    /// such as `info,rbee_hive::download=debug`.
    #[arg(long, env = "RBEE_LOG", default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    /// Finished jobs kept for status and replay.
    #[arg(long, default_value_t = 1000)]
    pub max_finished_jobs: usize,
    /// Seconds a finished job is kept.
    #[arg(long, default_value_t = 3600)]
    pub finished_ttl_secs: u64,
    /// Bandwidth cap shared by every download of this hive, bytes per second with an optional
    /// K/M/G suffix (1024-based, as curl's --limit-rate): `20M`. A job may set a lower one.
    #[arg(long, env = "RBEE_HIVE_MAX_RATE", value_parser = rbee_protocol::text::parse_rate)]
    pub max_rate: Option<u64>,
    /// Answer downloads from the cache alone, never calling the hub (huggingface_hub's variable).
    #[arg(long, env = "HF_HUB_OFFLINE", value_parser = truthy, default_value = "0")]
    pub offline: bool,
    /// Download jobs transferring at once; further ones wait, `queued`, in arrival order, their
    /// place narrated and heartbeats sent while they wait.
    #[arg(long, env = "RBEE_HIVE_MAX_DOWNLOADS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_downloads: u32,
    /// Accept files whose ETag is neither a sha256 nor a git sha1: their content cannot be
    /// verified, only their size. Off: such a download fails, naming the ETag.
    #[arg(long, env = "RBEE_HIVE_ALLOW_UNVERIFIED")]
    pub allow_unverified: bool,
    /// Tests only (hidden): hold this many descriptors open, so that the transfers' sockets get
    /// numbers above them (above 1024: `FD_SETSIZE`, where `select` fails).
    #[arg(long, hide = true, default_value_t = 0)]
    pub test_hold_fds: usize,
    /// Tests only (hidden): the free space the disk-space check sees, in bytes.
    #[arg(long, hide = true)]
    pub test_free_space: Option<u64>,
    /// Tests only (hidden): write downloads to disk in fixed batches of this many bytes instead of
    /// adaptive 32 KiB–1 MiB ones. Tiny batches keep a write in flight at almost every moment,
    /// which widens any window between a write and a cancel (`tests/e2e/chaos.rs`).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub test_write_batch: Option<u32>,
    /// Benchmarks only (hidden): skip every fsync/fdatasync of the cache, to measure what
    /// durability costs (`just bench`, section `durable`). Never use it for real.
    #[arg(long, hide = true)]
    pub test_no_fsync: bool,
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub token: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub limits: crate::http::Limits,
    pub download: Settings,
    pub retention: Retention,
    pub mirror_upstream: bool,
}

fn secs(v: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{flag} must be a positive number of seconds"))
}

impl Args {
    /// Checks flags and fills defaults from the environment.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let token = self.token.filter(|t| !t.is_empty());
        if let Some(t) = &token {
            check_token(t)?;
        }
        if !self.addr.ip().is_loopback() && token.is_none() {
            bail!(
                "refusing to listen on {} without a token: anyone who can reach it could run jobs; \
                 set RBEE_HIVE_TOKEN (or --token), or bind 127.0.0.1",
                self.addr
            );
        }
        let endpoint = surf::Url::parse(self.endpoint.trim_end_matches('/'))
            .with_context(|| format!("HF_ENDPOINT `{}` is not a URL", self.endpoint))?;
        let cache = cache_dir(self.cache_dir)?;
        if self.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        let allowed_hosts =
            self.allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
        crate::cache::fs::set_durable(!self.test_no_fsync);
        Ok(Config {
            addr: self.addr,
            token,
            allowed_hosts,
            limits: crate::http::Limits {
                request_timeout: secs(self.request_timeout_secs, "request-timeout-secs")?,
                max_connections: self.max_connections,
            },
            download: Settings {
                endpoint,
                token: hf_token(self.hf_token)?,
                cache,
                heartbeat: secs(self.heartbeat_secs, "heartbeat-secs")?,
                stall: secs(self.stall_secs, "stall-secs")?,
                retries: self.retries,
                backoff_base: Duration::from_millis(self.retry_backoff_ms),
                max_parts: self.max_parts as usize,
                write_batch: self.test_write_batch.map(|n| n as usize),
                offline: self.offline,
                max_rate: self.max_rate,
                free_space: self.test_free_space,
                proxy: proxy_from_env(),
                allow_unverified: self.allow_unverified,
                max_downloads: self.max_downloads as usize,
                hold_fds: self.test_hold_fds,
            },
            retention: Retention {
                max_finished: self.max_finished_jobs,
                ttl: Duration::from_secs(self.finished_ttl_secs),
            },
            mirror_upstream: self.mirror_upstream,
        })
    }
}

/// Shortest hive token accepted: a short one is guessed by whoever can reach the hive.
pub const MIN_TOKEN_LEN: usize = 16;

/// A hive token is at least [`MIN_TOKEN_LEN`] visible ASCII characters: no whitespace (a
/// `Bearer` value ends at it, so such a token could not be sent as it was set) and nothing an
/// HTTP header cannot carry.
fn check_token(token: &str) -> anyhow::Result<()> {
    if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "refusing the hive token: it must be at least {MIN_TOKEN_LEN} visible ASCII characters, with no \
             whitespace (got {} characters); set RBEE_HIVE_TOKEN (or --token) to a longer one, e.g. the \
             output of `openssl rand -hex 16`",
            token.chars().count()
        );
    }
    Ok(())
}

/// `HF_TOKEN`, when set: it goes into an `Authorization` header, which carries visible ASCII only.
fn hf_token(token: Option<String>) -> anyhow::Result<Option<String>> {
    let token = token.filter(|t| !t.is_empty());
    if token.as_deref().is_some_and(|t| !t.bytes().all(|b| b.is_ascii_graphic())) {
        bail!("HF_TOKEN (or --hf-token) holds a space, a control or a non-ASCII character: set it to the token alone");
    }
    Ok(token)
}

/// huggingface_hub's reading of a boolean variable (protocol's `hf::is_true`), as a clap parser.
fn truthy(value: &str) -> Result<bool, String> {
    Ok(rbee_protocol::hf::is_true(value))
}

/// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` (upper or lower case, upper first).
fn proxy_from_env() -> Option<crate::download::Proxy> {
    let var = |name: &str| {
        [name.to_owned(), name.to_ascii_lowercase()]
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
    };
    let proxy = crate::download::Proxy {
        https: var("HTTPS_PROXY"),
        http: var("HTTP_PROXY"),
        all: var("ALL_PROXY"),
        no_proxy: var("NO_PROXY"),
    };
    (proxy != crate::download::Proxy::default()).then_some(proxy)
}

/// `--cache-dir` / `HF_HUB_CACHE`, else where huggingface_hub puts its cache (protocol's `hf`).
fn cache_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let var = |name| std::env::var_os(name).map(PathBuf::from);
    let env = rbee_protocol::hf::CacheEnv {
        hf_hub_cache: flag,
        hf_home: var("HF_HOME"),
        xdg_cache_home: var("XDG_CACHE_HOME"),
        home: var("HOME"),
    };
    rbee_protocol::hf::cache_dir(&env).context("HOME is not set: set HF_HUB_CACHE")
}

#[cfg(test)]
mod tests {
    use super::check_token;

    #[test]
    fn hf_tokens_fit_a_header() {
        assert_eq!(super::hf_token(Some(String::new())).unwrap(), None);
        assert!(super::hf_token(Some("hf_abc".into())).unwrap().is_some());
        for bad in ["hf_\u{e9}", "hf abc", "hf_a\nb"] {
            assert!(super::hf_token(Some(bad.into())).unwrap_err().to_string().contains("HF_TOKEN"), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_long_and_visible() {
        assert!(check_token("0123456789abcdef").is_ok());
        for bad in [
            "s3cret",
            "0123456789abcde",
            "                ",
            "0123456789 abcdef",
            "0123456789abcdef\t",
            "é123456789abcdef",
        ] {
            let e = check_token(bad).unwrap_err().to_string();
            assert!(e.contains("at least 16") && e.contains("RBEE_HIVE_TOKEN"), "{bad:?}: {e}");
        }
    }
}
