//! Why a download failed, worded for the person who asked for it.

use crate::cache::CacheError;

/// A download failure. Messages say what failed, why, and what to do; they never carry a token.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The request named an invalid repo, revision or file.
    #[error("{0}")]
    Invalid(#[from] rbee_protocol::validate::InvalidName),
    /// 401 / 403 from the hub.
    #[error("access to `{repo}` was denied (HTTP {status}): the repo is gated or private{hint}")]
    Unauthorized {
        /// Repo id.
        repo: String,
        /// 401 or 403.
        status: u16,
        /// What to do about it.
        hint: &'static str,
    },
    /// 404 with `X-Error-Code: RepoNotFound` (or no code).
    #[error("repository `{0}` was not found on the hub: check the repo id (private repos need HF_TOKEN)")]
    RepoNotFound(String),
    /// 404 with `X-Error-Code: RevisionNotFound`.
    #[error("revision `{revision}` was not found in `{repo}`: check the branch, tag or commit")]
    RevisionNotFound {
        /// Repo id.
        repo: String,
        /// The revision asked for.
        revision: String,
    },
    /// 404 with `X-Error-Code: EntryNotFound`.
    #[error("file `{file}` was not found in `{repo}` at revision `{revision}`: check the file name")]
    EntryNotFound {
        /// Repo id.
        repo: String,
        /// Revision.
        revision: String,
        /// File asked for.
        file: String,
    },
    /// Any other unexpected HTTP status.
    #[error("the hub answered HTTP {status} for {what}{retried}")]
    Status {
        /// The status.
        status: u16,
        /// What was requested.
        what: String,
        /// ", after N attempts" or empty.
        retried: String,
    },
    /// Network failure after the last retry.
    #[error("network error while {what}: {reason}{retried}")]
    Network {
        /// What was being done.
        what: String,
        /// What went wrong.
        reason: String,
        /// ", after N attempts" or empty.
        retried: String,
    },
    /// A bare `org/repo` was asked for and the repo has no GGUF file to pick.
    #[error("`{repo}` has no GGUF file ({files} files in the repo); name a file as `{repo}:<file>`, or download the whole repo with `--all`")]
    NoGguf {
        /// Repo id.
        repo: String,
        /// How many files it has.
        files: usize,
    },
    /// The hub's answer lacked something required.
    #[error("unexpected answer from the hub for `{what}`: {reason}")]
    Protocol {
        /// What was requested.
        what: String,
        /// What was missing or wrong.
        reason: String,
    },
    /// Size check failed after the body ended.
    #[error("size mismatch for `{file}`: expected {expected} bytes, got {actual}; the partial file was deleted, retry the download")]
    SizeMismatch {
        /// File.
        file: String,
        /// Expected size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The server sent more than the size it declared (a CDN that would fill the disk).
    #[error("the server sent more than the declared {declared} bytes of `{file}`: stopped reading there and deleted the partial file; the upstream is misbehaving, try again later or another endpoint")]
    Oversized {
        /// File.
        file: String,
        /// The declared size.
        declared: u64,
    },
    /// sha256 (LFS) or git blob sha1 (other files) check failed.
    #[error("{algorithm} mismatch for `{file}`: expected {expected}, got {actual}; the partial file was deleted, retry the download")]
    HashMismatch {
        /// `sha256` or `git blob sha1`.
        algorithm: &'static str,
        /// File.
        file: String,
        /// Expected digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// 429 from the hub (issue 13): wait as told, then retry.
    #[error("the hub rate-limited {what} (HTTP 429; it asked to wait {} s){retried}", wait.as_secs())]
    RateLimited {
        /// What was requested.
        what: String,
        /// How long the hub asked to wait (bounded).
        wait: std::time::Duration,
        /// ", after N attempts" or empty.
        retried: String,
    },
    /// What is still to fetch does not fit on the cache's filesystem.
    #[error("needs {need}, {free} free at {path}: free some space (`rbee model rm …`) or point HF_HUB_CACHE at a larger disk")]
    NoSpace {
        /// Bytes still to fetch, human.
        need: String,
        /// Bytes free, human.
        free: String,
        /// The cache directory.
        path: String,
    },
    /// `HF_HUB_OFFLINE` is set and the cache lacks what was asked for.
    #[error("offline: {0}")]
    Offline(String),
    /// The hub could not be reached and the cache holds no copy to fall back on.
    #[error("{0}")]
    Unreachable(String),
    /// Some files of a selection failed (the others are in the snapshot).
    #[error("{failed} of {of} files failed: {reasons}")]
    Files {
        /// How many failed.
        failed: usize,
        /// How many were asked for.
        of: usize,
        /// Each failed file and why.
        reasons: String,
    },
    /// `--include` / `--exclude` left no file.
    #[error("no file of `{repo}` matches the --include / --exclude patterns ({files} files in the revision)")]
    NothingSelected {
        /// Repo id.
        repo: String,
        /// Files in the revision.
        files: usize,
    },
    /// The file is stored in Xet and the hub would not serve it over plain HTTP.
    #[error("`{file}` is stored in Xet and the hub refused to serve it over plain HTTP ({reason}); rbee cannot download Xet-only files: fetch it with `hf download` (hf_xet) into the same cache")]
    XetOnly {
        /// File.
        file: String,
        /// What the hub answered.
        reason: String,
    },
    /// Disk trouble (full, unwritable cache…).
    #[error("cannot write the cache: {0} (check free space and permissions, or set HF_HUB_CACHE)")]
    Cache(#[from] CacheError),
}

impl DownloadError {
    /// Whether trying again (resuming) may help.
    #[must_use]
    pub fn retryable(&self) -> bool {
        match self {
            Self::Network { .. } | Self::RateLimited { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }

    /// Appends ", after N attempts" to retryable errors.
    #[must_use]
    pub fn after_attempts(mut self, attempts: u32) -> Self {
        if let Self::Network { retried, .. } | Self::Status { retried, .. } | Self::RateLimited { retried, .. } =
            &mut self
        {
            *retried = match attempts {
                1 => " (no retries: --retries 0)".to_owned(),
                n => format!(" (gave up after {n} attempts)"),
            };
        }
        self
    }
}

impl DownloadError {
    /// The wait a rate limit asked for, when this is one.
    #[must_use]
    pub fn rate_limit_wait(&self) -> Option<std::time::Duration> {
        match self {
            Self::RateLimited { wait, .. } => Some(*wait),
            _ => None,
        }
    }
}

/// A network error for `what`.
pub fn network(what: impl Into<String>, reason: impl std::fmt::Display) -> DownloadError {
    DownloadError::Network { what: what.into(), reason: reason.to_string(), retried: String::new() }
}
