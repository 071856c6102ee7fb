//! Issue 13, what `hf download` users expect: snapshots with include/exclude, `--dry-run`, pasted
//! URLs, `model verify`, the disk-space check and `HF_HUB_OFFLINE`.

use std::time::Duration;

use rbee_tests::harness::fixtures::{assert_published, hub_with_model, snapshot, MODEL, REPO};
use rbee_tests::harness::{disk_state, FakeHub, Fault, Hive, HubConfig, Keeper, RepoSpec};

const KIB: u64 = 1024;

/// A repo of two GGUFs, a top-level and a nested JSON.
fn hub_with_files() -> FakeHub {
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(
        RepoSpec::new(REPO)
            .lfs("m.Q4_K_M.gguf", 256 * KIB)
            .lfs("m.Q8_0.gguf", 256 * KIB)
            .text("config.json", 300)
            .text("sub/tokenizer.json", 500),
    );
    hub
}

/// `sub/tokenizer.json` is linked (`../../../blobs/…`) with the hub's bytes.
#[track_caller]
fn assert_nested(hive: &Hive, hub: &FakeHub) {
    let path = snapshot(hive, hub, "sub/tokenizer.json");
    let link = std::fs::read_link(&path).expect("nested snapshot link");
    assert!(link.starts_with("../../../blobs"), "{}", link.display());
    assert_eq!(std::fs::read(&path).unwrap(), hub.file_bytes(REPO, "sub/tokenizer.json"));
}

fn linked(hive: &Hive, hub: &FakeHub, file: &str) -> bool {
    std::fs::symlink_metadata(snapshot(hive, hub, file)).is_ok()
}

#[test]
fn include_exclude_download_a_selection_as_one_job_pinned_to_the_commit() {
    let hub = hub_with_files();
    let hive = Hive::spawn(&hub);
    let out = Keeper::new()
        .hive(&hive)
        .args(["--json", "model", "download", REPO, "--include", "*.json", "*.gguf", "--exclude", "*Q8*"])
        .run();
    out.assert_success();
    for file in ["m.Q4_K_M.gguf", "config.json"] {
        assert_published(&hive, &hub, file);
    }
    assert_nested(&hive, &hub);
    assert!(!linked(&hive, &hub, "m.Q8_0.gguf"), "excluded file downloaded\n{}", out.dump());
    let terminal = out.stdout.lines().filter(|l| l.contains(r#""kind":"done""#) || l.contains(r#""kind":"error""#));
    assert_eq!(terminal.count(), 1, "one terminal event\n{}", out.dump());
    assert!(out.stdout.contains("∑ total"), "a total progress line\n{}", out.dump());
    // After the listing resolved `main`, every request names the commit.
    let commit = hub.commit(REPO);
    for r in hub.stats().requests.iter().filter(|r| r.path.contains("/resolve/")) {
        assert!(r.path.contains(&commit), "ref-dependent request after resolving: {}", r.path);
    }
}

#[test]
fn a_failed_file_is_named_and_the_others_still_land() {
    let hub = hub_with_files();
    let hive = Hive::builder().hub(&hub).retries(0).spawn();
    hub.set_fault("m.Q8_0.gguf", Fault::Status(500), 1);
    let out = Keeper::new().hive(&hive).args(["model", "download", REPO, "--all"]).run();
    out.assert_code(1).assert_stderr_contains("1 of 4 files failed: `m.Q8_0.gguf`");
    assert_published(&hive, &hub, "m.Q4_K_M.gguf");
    assert_nested(&hive, &hub);
}

#[test]
fn dry_run_lists_sizes_and_cache_state_and_touches_nothing() {
    let hub = hub_with_files();
    let hive = Hive::spawn(&hub);
    Keeper::new().hive(&hive).args(["model", "download", REPO, "config.json"]).run().assert_success();
    let before = disk_state(hive.cache_dir());
    let out = Keeper::new().hive(&hive).args(["model", "download", REPO, "--all", "--dry-run"]).run();
    out.assert_success();
    out.assert_stdout_contains("🔎 dry run: 3 of 4 files")
        .assert_stdout_contains("to fetch, 512.5 KiB of 512.8 KiB")
        .assert_stdout_contains("m.Q8_0.gguf")
        .assert_stdout_contains("256.0 KiB  to fetch");
    assert!(out.stdout.lines().any(|l| l.contains("config.json") && l.ends_with("cached")), "{}", out.dump());
    assert_eq!(disk_state(hive.cache_dir()), before, "a dry run wrote the cache");
    assert_eq!(hub.stats().connections.len(), 0, "a dry run fetched bytes");
    let json = Keeper::new().hive(&hive).args(["--json", "model", "download", REPO, "--all", "--dry-run"]).run();
    let result: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("the plan as JSON");
    assert_eq!(result["cached"], 1, "{result}");
    assert_eq!(result["to_fetch"], 2 * 256 * 1024 + 500, "{result}");
}

#[test]
fn a_pasted_hub_url_names_repo_revision_and_file() {
    let hub = hub_with_model(64 * KIB);
    let hive = Hive::spawn(&hub);
    let url = format!("https://huggingface.co/{REPO}/blob/main/{MODEL}?download=true");
    Keeper::new().hive(&hive).args(["model", "download", url.as_str()]).run().assert_success();
    assert_published(&hive, &hub, MODEL);
    let resolve = format!("https://huggingface.co/{REPO}/resolve/nope/{MODEL}");
    let out = Keeper::new().hive(&hive).args(["model", "download", resolve.as_str(), "--revision", "main"]).run();
    out.assert_code(2).assert_stderr_contains("the URL names revision `nope`");
}

#[test]
fn verify_quarantines_a_corrupt_blob_and_exits_1() {
    let hub = hub_with_model(64 * KIB);
    let hive = Hive::spawn(&hub);
    Keeper::new().hive(&hive).args(["model", "download", REPO, "--all"]).run().assert_success();
    Keeper::new()
        .hive(&hive)
        .args(["model", "verify", REPO])
        .run()
        .assert_success()
        .assert_stdout_contains("all match");
    let pointer = snapshot(&hive, &hub, MODEL);
    let blob = pointer.canonicalize().expect("blob");
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let out = Keeper::new().hive(&hive).args(["model", "verify"]).run();
    out.assert_code(1).assert_stderr_contains("quarantined");
    let etag = blob.file_name().unwrap().to_str().unwrap().to_owned();
    let q = hive.cache_dir().join(".rbee-quarantine/models--rbee-test--tiny-model");
    assert!(q.join(&etag).is_file(), "blob not in the quarantine\n{}", out.dump());
    let record = std::fs::read_to_string(q.join(format!("{etag}.json"))).expect("restore record");
    assert!(record.contains(MODEL), "{record}");
    assert!(std::fs::symlink_metadata(&pointer).is_err(), "link to the bad blob kept");
    assert!(linked(&hive, &hub, "config.json"), "a good file was touched");
    Keeper::new().hive(&hive).args(["model", "verify"]).run().assert_success();
}

#[test]
fn a_download_the_disk_cannot_hold_fails_before_its_first_byte() {
    let hub = hub_with_model(256 * KIB);
    let hive = Hive::builder().hub(&hub).arg("--test-free-space").arg("1000").spawn();
    let out = Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run();
    out.assert_code(1).assert_stderr_contains("needs 256.0 KiB, 1000 B free at ");
    let all = Keeper::new().hive(&hive).args(["model", "download", REPO, "--all"]).run();
    all.assert_code(1).assert_stderr_contains("free at ");
    assert_eq!(hub.stats().connections.len(), 0, "bytes were fetched");
}

#[test]
fn offline_answers_from_the_cache_without_any_request() {
    let hub = hub_with_model(64 * KIB);
    let online = Hive::spawn(&hub);
    Keeper::new().hive(&online).args(["model", "download", REPO, MODEL]).run().assert_success();
    let offline = Hive::builder().hub(&hub).share_cache(&online).env("HF_HUB_OFFLINE", "1").spawn();
    let seen = hub.stats().requests.len();
    let out = Keeper::new().hive(&offline).args(["model", "download", REPO, MODEL]).run();
    out.assert_success().assert_stdout_contains(&format!("snapshots/{}/{MODEL}", hub.commit(REPO)));
    let missing = Keeper::new().hive(&offline).args(["model", "download", REPO, "config.json"]).run();
    missing.assert_code(1).assert_stderr_contains("`config.json` of `rbee-test/tiny-model` @ main");
    missing.assert_stderr_contains("HF_HUB_OFFLINE");
    let rev = Keeper::new().hive(&offline).args(["model", "download", REPO, MODEL, "--revision", "v9"]).run();
    rev.assert_code(1).assert_stderr_contains("revision `v9`");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(hub.stats().requests.len(), seen, "an offline hive called the hub");
    assert_eq!(hub.stats().connections.len(), 1, "an offline hive called the CDN");
}
