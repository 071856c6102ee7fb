//! Issue 24 §4: what a hostile hub says is checked before the hive acts on it — a commit that is
//! no commit, an ETag that is no digest (or holds an escape sequence), a redirect to another
//! scheme or to a link-local / private address. The redirect test runs inside a network
//! namespace of its own (`unshare -n`: loopback only), so nothing can leave the machine even if
//! the refusal were broken.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::fixtures::{hub_with_model, wait_status, MODEL, REPO};
use crate::harness::{peer, FakeHub, Hive};

/// Starts a download of `file` and waits for it to fail; the job's error text.
fn fails(hive: &Hive, file: &str) -> String {
    let id = hive.start_download(REPO, file);
    let info: Value = wait_status(hive, &id, "failed");
    info["error"].as_str().unwrap_or_default().to_owned()
}

/// Every path under `dir` (names only, recursively).
fn names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(entry.file_name().to_string_lossy().into_owned());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(names(&entry.path()));
        }
    }
    out
}

/// A hub whose resolve of `config.json` carries `header`, a hive that does not retry, and the
/// error of that file's download.
fn with_header(header: (&str, &str)) -> (FakeHub, Hive, String) {
    let hub = hub_with_model(64 << 10);
    hub.set_resolve_headers("config.json", &[header]);
    let hive = Hive::builder().hub(&hub).retries(0).spawn();
    let error = fails(&hive, "config.json");
    (hub, hive, error)
}

#[test]
fn a_commit_that_is_no_commit_is_refused_naming_the_header() {
    let (_hub, hive, error) = with_header(("X-Repo-Commit", "refs/heads/x"));
    assert!(error.contains("X-Repo-Commit") && error.contains("refs/heads/x"), "{error}\nhive log:\n{}", hive.log());
    let repo = hive.repo_dir(REPO);
    assert!(!repo.join("snapshots/refs").exists(), "made {:?}", names(&repo));
}

#[test]
fn an_etag_with_an_escape_or_no_digest_is_refused() {
    let (hub, hive, error) = with_header(("ETag", "\"\u{1b}[31mRED\u{1b}[0m\""));
    assert!(error.contains("ETag") && error.contains("not a usable blob name"), "{error}");
    assert!(!names(&hive.repo_dir(REPO)).iter().any(|n| n.contains('\u{1b}')), "an ESC reached the cache");
    assert!(!error.contains('\u{1b}'), "raw ESC in the error: {error:?}");

    // A plain name that is no digest: content that cannot be verified.
    hub.set_resolve_headers("config.json", &[("ETag", "\"not-a-digest-123\"")]);
    let error = fails(&hive, "config.json");
    assert!(error.contains("cannot be verified") && error.contains("--allow-unverified"), "{error}");
    let unverified = Hive::builder().hub(&hub).retries(0).arg("--allow-unverified").spawn();
    let id = unverified.start_download(REPO, "config.json");
    wait_status(&unverified, &id, "completed");
    assert!(
        unverified.repo_dir(REPO).join("blobs/not-a-digest-123").is_file(),
        "{:?}",
        names(&unverified.repo_dir(REPO))
    );
}

/// Inside the namespace: the hub redirects the LFS file to the cloud metadata address, then to
/// `file://`; the hive refuses both by its own check, before any connection.
fn redirect_refusals_inside_the_namespace() {
    let hub = hub_with_model(256 << 10);
    let hive = Hive::builder().hub(&hub).retries(0).spawn();
    for (location, says) in [
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "link-local"),
        ("http://10.1.2.3/blob", "private-range"),
        ("file:///etc/passwd", "only http and https"),
    ] {
        hub.set_resolve_headers(MODEL, &[("Location", location)]);
        let error = fails(&hive, MODEL);
        assert!(
            error.contains("refused a redirect") && error.contains(says),
            "{location}: {error}\nhive log:\n{}",
            hive.log()
        );
    }
    assert_eq!(hub.stats().cdn_bytes, 0, "the CDN was asked");
    // The same hub's own CDN (loopback, like the endpoint) is still fine.
    hub.clear_faults();
    let id = hive.start_download(REPO, MODEL);
    wait_status(&hive, &id, "completed");
}

#[test]
fn redirects_to_link_local_private_or_other_schemes_are_refused() {
    if std::env::var_os("RBEE_TEST_IN_NETNS").is_some() {
        return redirect_refusals_inside_the_namespace();
    }
    let Some(unshare) = peer::require("util-linux", &["unshare"], "the redirect-refusal test") else { return };
    let Some(ip) = peer::require("iproute2", &["ip", "/usr/sbin/ip", "/sbin/ip"], "the redirect-refusal test") else {
        return;
    };
    let exe = std::env::current_exe().expect("test executable");
    let out = Command::new(unshare)
        .args(["-n", "--", "sh", "-c", "\"$0\" link set lo up && exec \"$@\""])
        .arg(ip)
        .arg(exe)
        .args(["--exact", "upstream_checks::redirects_to_link_local_private_or_other_schemes_are_refused"])
        .args(["--nocapture", "--test-threads", "1"])
        .env("RBEE_TEST_IN_NETNS", "1")
        .output()
        .expect("run unshare");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "inside `unshare -n`:\n{text}");
}
