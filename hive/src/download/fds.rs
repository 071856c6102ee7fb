//! Descriptors: a hive running hundreds of downloads needs more than the usual soft limit of
//! 1024, so it raises its soft `RLIMIT_NOFILE` to the hard one at start. Every transfer then may
//! hold sockets numbered above 1024 (`FD_SETSIZE`), which libcurl must wait on with `poll`, never
//! `select` — the vendored libcurl is built with `HAVE_POLL` for that (`.cargo/config.toml`).
//! Tests push the numbers up by holding descriptors open (`--test-hold-fds`).

use anyhow::Context;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft descriptor limit to the hard one, then opens `hold` descriptors of
/// `/dev/null` for the caller to keep.
pub(super) fn raise_and_hold(hold: usize) -> anyhow::Result<Vec<std::fs::File>> {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::warn!("could not raise the descriptor limit from {soft} to {hard}: {e}");
            }
        }
    }
    (0..hold).map(|_| std::fs::File::open("/dev/null").context("--test-hold-fds: opening /dev/null")).collect()
}
