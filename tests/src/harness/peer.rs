//! Real peers (Debian packages such as nginx, chromium, tinyproxy, sshd, strace): find one, or say
//! loudly that its test did not run. Under `CI=true` a missing peer fails the test instead: CI
//! installs every peer (`.ci/run`), so a missing one there is a broken install, never a pass.

use std::path::{Path, PathBuf};

/// The first of `candidates` that exists (absolute paths) or is found on `PATH` (bare names).
pub fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().find_map(|c| {
        if c.contains('/') {
            Path::new(c).exists().then(|| PathBuf::from(c))
        } else {
            std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|dir| dir.join(c)).find(|p| p.is_file())
        }
    })
}

/// The peer's path, or `None` after a loud skip line naming `what` did not run.
///
/// # Panics
/// Under `CI=true` when the peer is missing: CI must never pass a test that did not run.
#[track_caller]
pub fn require(package: &str, candidates: &[&str], what: &str) -> Option<PathBuf> {
    if let Some(path) = find(candidates) {
        return Some(path);
    }
    let line = format!("{package} is not installed (apt-get install {package}); {what} did NOT run");
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true but {line}: .ci/run must install it");
    eprintln!("\n\n!!!!! SKIPPED: {line} !!!!!\n\n");
    None
}
