//! Issue 24 §7: the keeper's state files (the local hive's log and start lock) are private — the
//! directory 0700, the files 0600, tightened when they were looser — and with neither `HOME` nor
//! `XDG_CACHE_HOME` the keeper refuses a shared temp dir unless `RBEE_STATE_DIR` names a place.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::harness::{FakeHub, LocalHive};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[track_caller]
fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for file in ["hive.log", "hive.lock"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{}", dir.join(file).display());
    }
}

/// `rbee hive start` for `local`, without `HOME` and `XDG_CACHE_HOME`, temp files in `tmp`.
fn homeless(local: &LocalHive, tmp: &Path) -> Command {
    let mut cmd = local.keeper().args(["hive", "start"]).command();
    cmd.env_remove("HOME").env_remove("XDG_CACHE_HOME").env_remove("RBEE_STATE_DIR").env("TMPDIR", tmp);
    cmd
}

#[test]
fn the_hive_log_and_lock_are_private_and_looser_ones_are_tightened() {
    let hub = FakeHub::with_default_repo();
    let local = LocalHive::new(&hub);
    let dir = local.home.path().join("rbee");
    std::fs::create_dir(&dir).expect("state dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(dir.join("hive.log"), b"").expect("old log");
    std::fs::set_permissions(dir.join("hive.log"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    local.keeper().args(["hive", "start"]).run().assert_success();
    assert_private(&dir);
    local.keeper().args(["hive", "stop"]).run().assert_success();
}

#[test]
fn without_a_home_a_shared_temp_dir_is_refused_unless_a_state_dir_is_named() {
    let hub = FakeHub::with_default_repo();
    let local = LocalHive::new(&hub);
    let tmp = TempDir::new().expect("tmp");
    let out = homeless(&local, tmp.path()).output().expect("run rbee");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without a private place: {stderr}");
    assert!(stderr.contains("RBEE_STATE_DIR") && stderr.contains("HOME"), "{stderr}");
    assert!(!local.listening(), "a hive was started");
    assert_eq!(std::fs::read_dir(tmp.path()).expect("tmp").count(), 0, "something was written to the temp dir");

    let state = tmp.path().join("state");
    let out = homeless(&local, tmp.path()).env("RBEE_STATE_DIR", &state).output().expect("run rbee");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_private(&state);
    local.keeper().args(["hive", "stop"]).run().assert_success();
}
