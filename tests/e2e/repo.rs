//! Whole-repo downloads (no file name: every file of the revision, listed by
//! `/api/models/{repo}/revision/{rev}`) and revisions given as a branch, a tag or a commit,
//! recorded under `refs/` the way huggingface_hub records them.

use std::path::PathBuf;

use crate::harness::fixtures::sha256_of;
use crate::harness::{FakeHub, Hive, HubConfig, RepoSpec};

const REPO: &str = "rbee-test/multi-file";
/// `v1.0` (a tag) points here.
const OLD: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// `main` and `dev` (branches) point here.
const NEW: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const FILES: [&str; 4] = ["model.gguf", "config.json", "tok/tokenizer.json", "tok/deep/w.bin"];

fn with_files(spec: RepoSpec) -> RepoSpec {
    spec.lfs("model.gguf", 512 << 10)
        .text("config.json", 120)
        .text("tok/tokenizer.json", 700)
        .lfs("tok/deep/w.bin", 90_000)
}

fn hub() -> FakeHub {
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(with_files(RepoSpec::new(REPO)).commit(OLD).tag("v1.0"));
    hub.add_repo(with_files(RepoSpec::new(REPO)).commit(NEW).tag("dev"));
    hub
}

/// `rbee model download REPO [file] [--revision r]`, which must succeed; returns stdout.
#[track_caller]
fn download(hive: &Hive, file: Option<&str>, revision: Option<&str>) -> String {
    crate::harness::download_ok(hive, REPO, file, revision)
}

fn snapshot(hive: &Hive, commit: &str) -> PathBuf {
    hive.repo_dir(REPO).join("snapshots").join(commit)
}

/// Every file of `commit` is in its snapshot, a relative link to a blob with the hub's bytes.
#[track_caller]
fn assert_snapshot_complete(hive: &Hive, hub: &FakeHub, commit: &str) {
    for file in FILES {
        let path = snapshot(hive, commit).join(file);
        let info = hub.file_info(REPO, commit, file).expect("hub file");
        let link =
            std::fs::read_link(&path).unwrap_or_else(|e| panic!("{} is no link: {e}\n{}", path.display(), hive.log()));
        let up = "../".repeat(file.matches('/').count() + 2);
        assert_eq!(link, PathBuf::from(format!("{up}blobs/{}", info.etag)), "{file}");
        assert_eq!(sha256_of(&path), info.sha256, "{commit}/{file}");
    }
}

/// `refs/*` of the repo as `name=commit`.
fn refs(hive: &Hive) -> Vec<String> {
    let dir = hive.repo_dir(REPO).join("refs");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    format!(
                        "{}={}",
                        e.file_name().to_string_lossy(),
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn whole_repo_download_publishes_every_file_of_the_revision() {
    let hub = hub();
    let hive = Hive::spawn(&hub);
    let stdout = download(&hive, None, None);
    assert!(stdout.contains(&snapshot(&hive, NEW).display().to_string()), "prints the snapshot dir: {stdout}");
    assert_snapshot_complete(&hive, &hub, NEW);
    assert_eq!(refs(&hive), [format!("main={NEW}")]);
    let listing = format!("/api/models/{REPO}/revision/main");
    // `?blobs=true`: the listing carries sizes (for the disk-space check and `--dry-run`).
    let listed = hub.stats().requests.iter().any(|r| r.path == listing || r.path == format!("{listing}?blobs=true"));
    assert!(listed, "the file list comes from /api/models/{REPO}/revision/main");
    let no_partials = std::fs::read_dir(hive.repo_dir(REPO).join("blobs"))
        .expect("blobs")
        .filter_map(Result::ok)
        .all(|e| !e.file_name().to_string_lossy().ends_with(".incomplete"));
    assert!(no_partials, "partials left behind");
    // A second run is served from the cache: no file bytes move.
    let before = hub.stats();
    download(&hive, None, None);
    let after = hub.stats();
    assert_eq!((after.cdn_bytes, after.hub_bytes), (before.cdn_bytes, before.hub_bytes));
}

#[test]
fn tag_revision_is_recorded_under_refs_with_its_commit() {
    let hub = hub();
    let hive = Hive::spawn(&hub);
    download(&hive, None, Some("v1.0"));
    assert_snapshot_complete(&hive, &hub, OLD);
    assert_eq!(refs(&hive), [format!("v1.0={OLD}")]);
    assert!(!snapshot(&hive, NEW).exists(), "only the tagged commit was asked for");
}

#[test]
fn branch_revision_is_recorded_under_refs() {
    let hub = hub();
    let hive = Hive::spawn(&hub);
    download(&hive, Some("tok/deep/w.bin"), Some("dev"));
    assert_eq!(refs(&hive), [format!("dev={NEW}")]);
    let path = snapshot(&hive, NEW).join("tok/deep/w.bin");
    assert_eq!(sha256_of(&path), hub.file_info(REPO, "dev", "tok/deep/w.bin").expect("file").sha256);
    assert!(!snapshot(&hive, NEW).join("model.gguf").exists(), "a one-file download fetches one file");
}

#[test]
fn commit_revision_writes_no_ref() {
    let hub = hub();
    let hive = Hive::spawn(&hub);
    download(&hive, Some("config.json"), Some(OLD));
    download(&hive, None, Some(NEW));
    assert_eq!(refs(&hive), Vec::<String>::new(), "huggingface_hub writes no ref for a commit revision");
    assert!(snapshot(&hive, OLD).join("config.json").is_file());
    assert_snapshot_complete(&hive, &hub, NEW);
}

#[test]
fn a_moved_branch_updates_its_ref_and_keeps_the_old_snapshot() {
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(with_files(RepoSpec::new(REPO)).commit(OLD));
    let hive = Hive::spawn(&hub);
    download(&hive, None, None);
    assert_eq!(refs(&hive), [format!("main={OLD}")]);
    hub.add_repo(with_files(RepoSpec::new(REPO)).commit(NEW));
    download(&hive, None, None);
    assert_eq!(refs(&hive), [format!("main={NEW}")]);
    assert_snapshot_complete(&hive, &hub, OLD);
    assert_snapshot_complete(&hive, &hub, NEW);
}
