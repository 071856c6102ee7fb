//! Test harness: locate the built binaries, run a hive ([`Hive`]) and the keeper ([`Keeper`]),
//! read a job's SSE stream ([`SseStream`]), and talk plain HTTP ([`http`]).
//!
//! ```ignore
//! let hub = FakeHub::with_default_repo();
//! let hive = Hive::spawn(&hub);
//! Keeper::new().hive(&hive).args(["model", "download", "rbee-test/tiny-model", "model.gguf"]).run().assert_success();
//! ```
// Test modules are added over time; not every helper is used by every build of the suite.
#![allow(dead_code, unused_imports)]

pub mod hive;
pub mod http;
pub mod keeper;
pub mod proxy;
pub mod pty;
pub mod sse;

use std::path::PathBuf;
use std::time::Duration;

pub use hive::{Hive, HiveBuilder};
pub use keeper::{Keeper, Output, Running};
pub use rbee_tests::hub::{CloseReason, FakeHub, Fault, HubConfig, RepoSpec};
pub use sse::{SseEnd, SseStream};

/// Generous upper bound for things that should take milliseconds.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Path of a binary of this workspace, built next to the test executable
/// (`target/<profile>/deps/e2e-…` → `target/<profile>/<name>`).
///
/// # Panics
/// When it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|deps| if deps.ends_with("deps") { deps.parent() } else { Some(deps) });
    let path = dir.expect("test binary directory").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.is_file(), "binary `{name}` missing at {}: run `just test` (it builds --bins first)", path.display());
    path
}

/// `rbee --hive URL model download <repo> [<file>] [--revision R]`, which must succeed; its stdout.
#[track_caller]
pub fn download_ok(hive: &Hive, repo: &str, file: Option<&str>, revision: Option<&str>) -> String {
    let mut keeper = Keeper::new().hive(hive).args(["model", "download", repo]);
    if let Some(f) = file {
        keeper = keeper.arg(f);
    }
    if let Some(r) = revision {
        keeper = keeper.args(["--revision", r]);
    }
    let out = keeper.run();
    out.assert_success();
    out.stdout
}

/// Every file, directory and symlink under `dir` (not following links) with its length and mtime:
/// two equal snapshots mean nothing under `dir` was written, created, removed or truncated.
pub fn disk_state(dir: &std::path::Path) -> std::collections::BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut state = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else { continue };
            if meta.is_dir() {
                todo.push(entry.path());
            }
            let mtime = meta.modified().expect("mtime");
            state.insert(entry.path(), (meta.len(), mtime));
        }
    }
    state
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}
