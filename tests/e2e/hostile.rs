//! Issue 17's attacks, replayed against the real hive: each is refused and nothing is lost.
//! (The headless-browser replay of the cross-site ones is in `browser.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::fixtures::{
    cached_model, hub_with_model, hub_with_slow_model, job, op_download, op_remove, partial_len, raw, wait_for,
    wait_status, MODEL, REPO,
};
use crate::harness::python::hf_scan_warnings;
use crate::harness::{Fault, Hive, Keeper, TIMEOUT};

/// `host:port` of a hive.
fn addr(hive: &Hive) -> String {
    hive.url().trim_start_matches("http://").trim_end_matches('/').to_owned()
}

fn jobs(hive: &Hive) -> Vec<Value> {
    let (status, body) = hive.get("/v1/jobs");
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

/// Every blob file under the repo, with its size.
fn cache_files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push((e.path().display().to_string(), e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn cross_site_rebinding_and_non_json_posts_are_refused() {
    let (_hub, hive) = cached_model(1 << 20);
    let before = cache_files(hive.cache_dir());
    let rm = op_remove(REPO, None).to_string();
    let dl = op_download(REPO, MODEL).to_string();
    let h = addr(&hive);
    let attacks: Vec<(String, &str, u16, &str)> = vec![
        // What a page's `fetch(…, {mode: "no-cors"})` sends.
        (format!("POST /v1/jobs HTTP/1.1\nHost: {h}\nOrigin: http://evil.example\nSec-Fetch-Site: cross-site\nContent-Type: text/plain;charset=UTF-8"), &rm, 403, "cross_origin"),
        (format!("POST /v1/jobs HTTP/1.1\nHost: {h}\nContent-Type: text/plain;charset=UTF-8"), &rm, 415, "unsupported_media_type"),
        (format!("POST /v1/jobs HTTP/1.1\nHost: {h}\nContent-Type: text/plain"), &dl, 415, "unsupported_media_type"),
        (format!("POST /v1/jobs HTTP/1.1\nHost: {h}\nContent-Type: application/x-www-form-urlencoded"), "a=1", 415, "unsupported_media_type"),
        (format!("POST /v1/jobs HTTP/1.1\nHost: {h}\nContent-Type: multipart/form-data; boundary=x"), "--x--", 415, "unsupported_media_type"),
        (format!("POST /v1/jobs HTTP/1.1\nHost: {h}"), &rm, 415, "unsupported_media_type"),
        (format!("POST /v1/shutdown HTTP/1.1\nHost: {h}\nContent-Type: text/plain"), "{}", 415, "unsupported_media_type"),
        (format!("POST /v1/shutdown HTTP/1.1\nHost: {h}"), "", 415, "unsupported_media_type"),
        (format!("POST /v1/shutdown HTTP/1.1\nHost: {h}\nContent-Type: application/json\nOrigin: null"), "{}", 403, "cross_origin"),
        // Even JSON is refused from a page on another origin, or another port of localhost.
        (format!("POST /v1/jobs HTTP/1.1\nHost: {h}\nContent-Type: application/json\nOrigin: http://127.0.0.2:8000"), &rm, 403, "cross_origin"),
        (format!("POST /v1/jobs HTTP/1.1\nHost: {h}\nContent-Type: application/json\nSec-Fetch-Site: same-site"), &rm, 403, "cross_origin"),
        (format!("DELETE /v1/models/{REPO} HTTP/1.1\nHost: {h}\nOrigin: http://evil.example"), "", 403, "cross_origin"),
        // DNS rebinding: the attacker's name in Host.
        ("GET /v1/models HTTP/1.1\nHost: attacker.example:7835".to_owned(), "", 403, "host_not_allowed"),
        ("GET /v1/jobs HTTP/1.1\nHost: attacker.example".to_owned(), "", 403, "host_not_allowed"),
        ("GET /health HTTP/1.1\nHost: 10.0.0.1:7835".to_owned(), "", 403, "host_not_allowed"),
        (format!("DELETE /v1/models/{REPO} HTTP/1.1\nHost: attacker.example"), "", 403, "host_not_allowed"),
        ("POST /v1/jobs HTTP/1.1\nHost: attacker.example\nContent-Type: application/json".to_owned(), &rm, 403, "host_not_allowed"),
    ];
    for (head, body, want, code) in &attacks {
        let (status, text) = raw(&addr(&hive), head, body.as_bytes());
        assert_eq!(status, *want, "{head}\n{text}");
        assert!(text.contains(code), "{head}\n{text}");
        assert!(!text.to_ascii_lowercase().contains("access-control-"), "CORS header sent:\n{text}");
        if *code == "host_not_allowed" {
            assert!(text.contains("--allowed-hosts"), "the 403 says how to allow a name:\n{text}");
        }
    }
    // A preflight gets no approval either.
    let (_, text) = raw(
        &addr(&hive),
        &format!(
            "OPTIONS /v1/jobs HTTP/1.1\nHost: {h}\nOrigin: http://evil.example\nAccess-Control-Request-Method: POST"
        ),
        b"",
    );
    assert!(!text.to_ascii_lowercase().contains("access-control-"), "{text}");

    assert!(jobs(&hive).len() == 1, "only the test's own download ran: {:?}", jobs(&hive));
    assert_eq!(cache_files(hive.cache_dir()), before, "the cache changed");
    assert_eq!(hive.get("/health").0, 200, "the hive is gone\n{}", hive.log());
    eprintln!("hostile: {} cross-site/rebinding/non-JSON requests tried, {} refused", attacks.len(), attacks.len());

    // The hive's own names and this keeper still work.
    for host in ["localhost", "127.0.0.1", "[::1]", &h] {
        let (status, text) = raw(&addr(&hive), &format!("GET /v1/models HTTP/1.1\nHost: {host}"), b"");
        assert_eq!(status, 200, "Host: {host}\n{text}");
    }
    Keeper::new().hive(&hive).args(["model", "list"]).run().assert_success().assert_stdout_contains(MODEL);
    Keeper::new().hive(&hive).args(["model", "rm", REPO]).run().assert_success();
}

#[test]
fn operator_listed_host_names_are_allowed_and_the_keeper_stops_the_hive() {
    let hive = Hive::builder().env("RBEE_HIVE_ALLOWED_HOSTS", "my-box, other.lan").spawn();
    for host in ["my-box:1234", "OTHER.LAN"] {
        let (status, text) = raw(&addr(&hive), &format!("GET /health HTTP/1.1\nHost: {host}"), b"");
        assert_eq!(status, 200, "{text}");
    }
    assert_eq!(raw(&addr(&hive), "GET /health HTTP/1.1\nHost: my-box.evil", b"").0, 403);
    // `rbee hive stop` posts `{}` as JSON.
    Keeper::new().hive(&hive).args(["hive", "stop"]).run().assert_success();
    let gone = Instant::now();
    while TcpStream::connect(addr(&hive)).is_ok() {
        assert!(gone.elapsed() < TIMEOUT, "the hive did not stop\n{}", hive.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_cdn_streaming_past_the_declared_size_is_cut_off() {
    let size = 1 << 20;
    let hub = hub_with_model(size);
    hub.set_fault(MODEL, Fault::Endless, 10);
    let hive = Hive::builder().hub(&hub).retries(0).spawn();
    let id = hive.start_download(REPO, MODEL);
    let end = wait_status(&hive, &id, "failed");
    let (_, log) = hive.get(&format!("/v1/jobs/{id}"));
    let text = format!("{end}\n{log}\n{}", hive.log());
    assert!(text.contains("more than the declared 1048576 bytes"), "{text}");
    // One write batch (1 MiB at most) beyond the declared size would be the most; here nothing is left.
    for (path, len) in cache_files(hive.cache_dir()) {
        assert!(len <= size, "{path} has {len} bytes, over the declared {size}");
        assert!(!path.ends_with(".incomplete"), "{path} left behind");
    }
    let sent = hub.stats().cdn_bytes;
    eprintln!("hostile: endless CDN sent {sent} bytes for a declared {size}; the hive kept 0");
}

#[test]
fn removing_what_a_job_downloads_answers_409_or_cancels_it_with_force() {
    let hub = hub_with_slow_model(64 << 20, 1 << 20);
    let hive = Hive::spawn(&hub);
    let id = hive.start_download(REPO, MODEL);
    wait_for(&hive, TIMEOUT, "the partial grows", || partial_len(&hive, &hub, MODEL) > 0);

    for path in [
        format!("/v1/models/{REPO}"),
        format!("/v1/models/{REPO}?file={MODEL}"),
        format!("/v1/models/{REPO}?partial=true"),
    ] {
        let (status, body) = hive.delete(&path);
        assert_eq!(status, 409, "DELETE {path}: {body}");
        assert_eq!(body["error"], "model_in_use", "{body}");
        assert!(body["message"].as_str().unwrap().contains(&id), "names the job: {body}");
    }
    let (_, created) = hive.post_job(&op_remove(REPO, None));
    let rm = created["job_id"].as_str().unwrap().to_owned();
    let end = wait_status(&hive, &rm, "failed");
    assert!(
        end.to_string().contains(&id)
            || hive.sse(&rm).until_terminal(TIMEOUT).iter().any(|f| format!("{f:?}").contains(&id)),
        "{end}"
    );
    // A removal of another file of the repo is no conflict.
    assert_eq!(hive.delete(&format!("/v1/models/{REPO}?file=config.json")).0, 404);
    let out = Keeper::new().hive(&hive).args(["model", "rm", REPO]).run();
    out.assert_code(1).assert_stderr_contains(&id);

    let sent = hub.stats().cdn_bytes;
    assert!(hub.wait_for_bytes(sent + (256 << 10), TIMEOUT), "the download stopped");
    assert_eq!(job(&hive, &id)["status"], "running");

    let (status, body) = hive.delete(&format!("/v1/models/{REPO}?force=true"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(job(&hive, &id)["status"], "cancelled");
    assert!(partial_len(&hive, &hub, MODEL) == 0 && !hive.repo_dir(REPO).exists(), "force removed it all");
}

#[test]
fn removal_never_follows_a_symlinked_blobs_dir() {
    let hive = Hive::builder().spawn();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious"), b"keep me").unwrap();
    std::fs::write(outside.path().join("x.incomplete"), b"keep me too").unwrap();
    let repo = hive.repo_dir("org/linked");
    std::fs::create_dir_all(repo.join("snapshots")).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.join("blobs")).unwrap();

    let (status, body) = hive.delete("/v1/models/org/linked");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "symlink_refused", "{body}");
    let (_, created) = hive.post_job(&op_remove("org/linked", None));
    wait_status(&hive, created["job_id"].as_str().unwrap(), "failed");
    let (status, listing) = hive.get("/v1/models");
    assert_eq!(status, 200, "{listing}");
    assert_eq!(std::fs::read(outside.path().join("precious")).unwrap(), b"keep me");
    assert_eq!(std::fs::read(outside.path().join("x.incomplete")).unwrap(), b"keep me too");
}

#[test]
fn interrupted_downloads_leave_a_cache_huggingface_hub_scans_cleanly() {
    let hub = hub_with_slow_model(32 << 20, 2 << 20);
    let mut hive = Hive::builder().hub(&hub).retries(0).spawn();
    // Cancelled.
    let id = hive.start_download(REPO, MODEL);
    wait_for(&hive, TIMEOUT, "the partial grows", || partial_len(&hive, &hub, MODEL) > 0);
    assert_eq!(hive.delete(&format!("/v1/jobs/{id}")).0, 200);
    assert_eq!(hf_scan_warnings(hive.cache_dir()), Vec::<String>::new(), "after a cancel");
    // Failed.
    hub.set_fault(MODEL, Fault::ResetAfter(1 << 20), 1);
    let id = hive.start_download(REPO, MODEL);
    wait_status(&hive, &id, "failed");
    assert_eq!(hf_scan_warnings(hive.cache_dir()), Vec::<String>::new(), "after a failure");
    // Killed (SIGKILL) mid-download of a file never seen before.
    let _ = std::fs::remove_dir_all(hive.repo_dir(REPO));
    let _id = hive.start_download(REPO, MODEL);
    wait_for(&hive, TIMEOUT, "the partial grows", || partial_len(&hive, &hub, MODEL) > 0);
    hive.kill();
    assert_eq!(hf_scan_warnings(hive.cache_dir()), Vec::<String>::new(), "after a kill");
}

#[test]
fn stalled_requests_are_closed_and_connections_capped() {
    let hive = Hive::builder().arg("--request-timeout-secs").arg("2").arg("--max-connections").arg("4").spawn();
    // A body that never finishes; a head that never finishes.
    for head in [
        "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\"",
        "GET /v1/models HTTP/1.1\r\nHost: local",
    ] {
        let mut conn = TcpStream::connect(addr(&hive)).unwrap();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        conn.write_all(head.as_bytes()).unwrap();
        let t = Instant::now();
        let mut out = Vec::new();
        let _ = conn.read_to_end(&mut out);
        let took = t.elapsed();
        // Closed at the deadline, not after a second one (async-h1 drains the unread body of the
        // answered request: a stalled connection refuses every further read).
        assert!(took < Duration::from_millis(3500), "a stalled request held its connection {took:?}");
        eprintln!("hostile: stalled request closed after {took:?}: {:?}", String::from_utf8_lossy(&out).lines().next());
    }
    // Only 4 connections are served at once: 40 idle ones hold at most 4 descriptors of the hive.
    let fds = || crate::harness::process::fds(hive.pid());
    let base = fds();
    let idle: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr(&hive)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let held = fds().saturating_sub(base);
    assert!(held <= 4, "40 idle connections hold {held} fds of the hive");
    drop(idle);
    assert_eq!(hive.get("/health").0, 200);
    // Unknown methods get an answer, not a dropped connection.
    let (status, text) = raw(&addr(&hive), "QUERY /v1/models HTTP/1.1\nHost: localhost", b"");
    assert_eq!(status, 501, "{text}");
    assert!(text.contains("method_not_implemented"), "{text}");
    let (status, _) = raw(&addr(&hive), "PUT /v1/models HTTP/1.1\nHost: localhost", b"");
    assert_eq!(status, 405);
}

#[test]
fn token_hive_closes_unauthenticated_connections_and_reads_one_bearer_header() {
    let cache = tempfile::tempdir().unwrap();
    let at = format!("127.0.0.1:{}", crate::harness::free_port());
    let child = std::process::Command::new(crate::harness::bin("rbee-hive"))
        .args(["--addr", &at, "--token", "s3cret-hostile-token"])
        .env("HF_HUB_CACHE", cache.path())
        .env_remove("RBEE_HIVE_TOKEN")
        .spawn()
        .unwrap();
    let _child = crate::harness::process::KillOnDrop(child);
    let up = Instant::now();
    while TcpStream::connect(&at).is_err() {
        assert!(up.elapsed() < TIMEOUT, "the token hive did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut conn = TcpStream::connect(&at).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    // Keep-alive asked for: the 401 still closes the connection.
    conn.write_all(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let t = Instant::now();
    let _ = conn.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 401") && text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(2), "the 401's connection stayed open");

    let ok = raw(&at, "GET /v1/models HTTP/1.1\nHost: localhost\nAuthorization: bearer s3cret-hostile-token", b"");
    assert_eq!(ok.0, 200, "a lower-case scheme is accepted: {}", ok.1);
    assert_eq!(
        raw(&at, "GET /v1/models HTTP/1.1\nHost: localhost\nAuthorization: BEARER s3cret-hostile-token", b"").0,
        200
    );
    let two = raw(
        &at,
        "GET /v1/models HTTP/1.1\nHost: localhost\nAuthorization: Bearer wrong\nAuthorization: Bearer s3cret-hostile-token",
        b"",
    );
    assert_eq!(two.0, 400, "{}", two.1);
    assert!(two.1.contains("ambiguous_authorization"), "{}", two.1);
}

#[test]
fn non_lfs_files_are_verified_by_git_blob_sha1_and_job_ids_are_uuids() {
    let hub = hub_with_model(1 << 20);
    let hive = Hive::builder().hub(&hub).retries(0).spawn();
    hub.set_fault("config.json", Fault::WrongBytes, 1);
    let id = hive.start_download(REPO, "config.json");
    let end = wait_status(&hive, &id, "failed");
    let frames = hive.sse(&id).until_terminal(TIMEOUT);
    let text = format!("{end} {frames:?}");
    assert!(text.contains("git blob sha1 mismatch"), "{text}");
    let id = hive.start_download(REPO, "config.json");
    wait_status(&hive, &id, "completed");
    let frames = format!("{:?}", hive.sse(&id).until_terminal(TIMEOUT));
    assert!(frames.contains("git blob sha1 ok"), "{frames}");

    let uuid = |id: &str| {
        let hex: Vec<&str> = id.strip_prefix("job-").unwrap_or("").split('-').collect();
        hex.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && hex.concat().bytes().all(|b| b.is_ascii_hexdigit())
            && hex[2].starts_with('4')
            && matches!(hex[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b')
    };
    assert!(uuid(&id), "{id}");
}

#[test]
fn bidi_and_control_characters_in_names_are_escaped_by_the_keeper() {
    let hive = Hive::builder().spawn();
    let repo = hive.repo_dir("org/tricky");
    let commit = "c".repeat(40);
    let etag = "e".repeat(64);
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::write(repo.join("blobs").join(&etag), b"x").unwrap();
    let snap = repo.join("snapshots").join(&commit);
    std::fs::create_dir_all(&snap).unwrap();
    let name = "evil\u{202e}fdp.exe\u{1b}[2J";
    std::os::unix::fs::symlink(format!("../../blobs/{etag}"), snap.join(name)).unwrap();
    let out = Keeper::new().hive(&hive).args(["model", "list"]).run();
    out.assert_success();
    assert!(!out.stdout.contains('\u{202e}') && !out.stdout.contains('\u{1b}'), "raw: {:?}", out.stdout);
    assert!(out.stdout.contains("evil\\u{202e}fdp.exe\\u{1b}[2J"), "{}", out.stdout);
}
