//! Test harness: locate the built binaries, run a hive ([`Hive`]) and the keeper ([`Keeper`]),
//! read a job's SSE stream ([`SseStream`]), and talk plain HTTP ([`http`]).
//!
//! ```ignore
//! let hub = FakeHub::with_default_repo();
//! let hive = Hive::spawn(&hub);
//! Keeper::new().hive(&hive).args(["model", "download", "rbee-test/tiny-model", "model.gguf"]).run().assert_success();
//! ```

pub mod capture;
pub mod cdp;
pub mod fixtures;
pub mod hive;
pub mod http;
pub mod keeper;
pub mod local;
pub mod nginx;
pub mod page;
pub mod peer;
pub mod process;
pub mod proxy;
pub mod pty;
pub mod python;
pub mod remote;
pub mod sse;
pub mod strace;

use std::path::PathBuf;
use std::time::Duration;

pub use crate::hub::{CloseReason, FakeHub, Fault, HubConfig, RepoSpec};
pub use hive::{Hive, HiveBuilder};
pub use keeper::{Keeper, Output, Running};
pub use local::LocalHive;
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
    refuse_stale(name, &path);
    path
}

/// Panics when `binary` is older than a source it is built from: a plain `cargo test` rebuilds
/// the test binary but not the other packages' binaries, and would test yesterday's hive.
/// (Manifests are not compared: cargo does not relink on a `Cargo.toml` touch, so a refusal could
/// never be cleared.)
fn refuse_stale(name: &str, binary: &std::path::Path) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned();
    let crates: &[&str] = match name {
        "rbee-hive" => &["protocol/src", "hive/src"],
        "rbee" => &["protocol/src", "keeper/src"],
        _ => &["protocol/src", "tests/src"],
    };
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).expect("binary mtime");
    let newer: Vec<PathBuf> = crates
        .iter()
        .flat_map(|dir| disk_state(&root.join(dir)))
        .filter(|(p, (_, mtime))| p.extension().is_some_and(|e| e == "rs") && *mtime > built)
        .map(|(p, _)| p)
        .collect();
    assert!(
        newer.is_empty(),
        "binary `{name}` at {} is older than its sources ({}): run `just test` (it builds --bins first)",
        binary.display(),
        newer.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );
}

/// `rbee --hive URL model download <repo> [<file>] [--revision R]`, which must succeed; its stdout.
#[track_caller]
pub fn download_ok(hive: &Hive, repo: &str, file: Option<&str>, revision: Option<&str>) -> String {
    let mut keeper = Keeper::new().hive(hive).args(["model", "download", repo]);
    match file {
        Some(f) => keeper = keeper.arg(f),
        None => keeper = keeper.arg("--all"),
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
