//! Model management through the keeper, checked on the filesystem: `rbee model list` (repos,
//! files, sizes, revisions, partials with percent; `--json`), `rbee model rm <repo> [<file>]`
//! (snapshot links, blobs nothing references any more, partials) and `--partial` (only
//! `.incomplete` files); plus the HTTP 404 for a repo that is not cached.

use std::path::{Path, PathBuf};

use rbee_protocol::{ModelListing, RemoveReport};

use crate::harness::{FakeHub, Fault, Hive, HubConfig, Keeper, Output, RepoSpec};

const REPO: &str = "rbee-test/tiny-model";
/// Its partially downloaded LFS file.
const BIG: &str = "big.gguf";
const BIG_SIZE: u64 = 4 << 20;
const OTHER: &str = "rbee-test/other-model";

fn hub() -> FakeHub {
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(RepoSpec::demo(REPO, 1 << 20).lfs(BIG, BIG_SIZE));
    hub.add_repo(RepoSpec::demo(OTHER, 256 << 10));
    hub
}

/// A hive that gives up at the first failure (so a reset leaves a partial behind).
fn hive(hub: &FakeHub) -> Hive {
    Hive::builder().hub(hub).retries(0).spawn()
}

#[track_caller]
fn rbee(hive: &Hive, args: &[&str]) -> Output {
    Keeper::new().hive(hive).args(args).run()
}

#[track_caller]
fn download(hive: &Hive, repo: &str, file: &str) {
    rbee(hive, &["model", "download", repo, file]).assert_success();
}

fn etag(hub: &FakeHub, repo: &str, file: &str) -> String {
    hub.file_info(repo, "main", file).expect("hub file").etag
}

fn blob(hive: &Hive, hub: &FakeHub, repo: &str, file: &str) -> PathBuf {
    hive.repo_dir(repo).join("blobs").join(etag(hub, repo, file))
}

fn link(hive: &Hive, hub: &FakeHub, repo: &str, file: &str) -> PathBuf {
    hive.repo_dir(repo).join("snapshots").join(hub.commit(repo)).join(file)
}

fn partial_path(hive: &Hive, hub: &FakeHub) -> PathBuf {
    hive.repo_dir(REPO).join("blobs").join(format!("{}.incomplete", etag(hub, REPO, BIG)))
}

/// Download [`BIG`] with a connection reset at 3/4: the job fails and leaves its partial.
/// Returns the partial's size on disk.
#[track_caller]
fn make_partial(hive: &Hive, hub: &FakeHub) -> u64 {
    hub.set_fault(BIG, Fault::ResetAfter(BIG_SIZE * 3 / 4), 1);
    rbee(hive, &["model", "download", REPO, BIG]).assert_code(1);
    let len = std::fs::metadata(partial_path(hive, hub)).map_or(0, |m| m.len());
    assert!(len > 0 && len < BIG_SIZE, "expected a partial, found {len} bytes\n{}", hive.log());
    len
}

/// The hub and a hive with `files` of [`REPO`] downloaded.
#[track_caller]
fn with_downloads(files: &[&str]) -> (FakeHub, Hive) {
    let hub = hub();
    let hive = hive(&hub);
    for file in files {
        download(&hive, REPO, file);
    }
    (hub, hive)
}

/// Fills the cache with two files of [`REPO`], one of [`OTHER`] and a partial of [`BIG`]; returns
/// the partial's size.
#[track_caller]
fn fill(hive: &Hive, hub: &FakeHub) -> u64 {
    download(hive, REPO, "model.gguf");
    download(hive, REPO, "config.json");
    download(hive, OTHER, "model.gguf");
    make_partial(hive, hub)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[test]
fn list_shows_repos_files_sizes_revisions_and_partials() {
    let hub = hub();
    let hive = hive(&hub);
    rbee(&hive, &["model", "list"]).assert_success().assert_stdout_contains("no models cached in");
    let partial = fill(&hive, &hub);
    let percent = partial as f64 * 100.0 / BIG_SIZE as f64;
    let commit = hub.commit(REPO);

    let out = rbee(&hive, &["model", "list"]);
    out.assert_success();
    let total = (1 << 20) + 96 + partial;
    // The lines of REPO's section: its header, then its indented files.
    let section: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with(&format!("📦 {REPO} ")))
        .take_while(|l| !l.starts_with("cache:"))
        .collect();
    let line = |needle: &str| section.iter().find(|l| l.contains(needle)).map(|l| (*l).to_owned());
    let repo_line = line(&format!("📦 {REPO}")).unwrap_or_else(|| panic!("no repo line\n{}", out.dump()));
    assert!(repo_line.ends_with(&format!("{:.1} MiB", total as f64 / f64::from(1 << 20))), "{repo_line}");
    let model = line("model.gguf").unwrap_or_else(|| panic!("no model.gguf line\n{}", out.dump()));
    assert!(model.contains("1.0 MiB") && model.contains(&format!("main ({})", &commit[..7])), "{model}");
    let config = line("config.json").unwrap_or_else(|| panic!("no config.json line\n{}", out.dump()));
    assert!(config.contains("96 B"), "{config}");
    let big = line(BIG).unwrap_or_else(|| panic!("no partial line\n{}", out.dump()));
    assert!(big.contains(&format!("partial {percent:.1}%")), "{big}\n{}", out.dump());
    out.assert_stdout_contains(&format!("📦 {OTHER}"));
    out.assert_stdout_contains(&format!("cache: {}", hive.cache_dir().display()));

    let out = rbee(&hive, &["model", "list", "--json"]);
    out.assert_success();
    let listing: ModelListing = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.dump()));
    assert_eq!(Path::new(&listing.cache_dir), hive.cache_dir());
    let repos: Vec<_> = listing.repos.iter().map(|r| r.repo.as_str()).collect();
    assert_eq!(repos, [OTHER, REPO]);
    let repo = &listing.repos[1];
    assert_eq!(repo.size, total);
    assert_eq!(repo.refs.get("main"), Some(&commit));
    let file = |name: &str| repo.files.iter().find(|f| f.file == name).unwrap_or_else(|| panic!("no {name}: {repo:?}"));
    let model = file("model.gguf");
    assert_eq!((model.size, model.partial, &model.revisions), (1 << 20, false, &vec![commit.clone()]));
    assert_eq!((file("config.json").size, file("config.json").partial), (96, false));
    let big = file(BIG);
    assert!(big.partial && big.revisions.is_empty() && big.size == partial, "{big:?}");
    let got = big.partial_percent.expect("percent of a partial with a known size");
    assert!((got - percent).abs() < 1e-6, "{got} vs {percent}");
}

/// A second snapshot (as another commit with the same file content would have) sharing the blob.
fn share_blob(hive: &Hive, hub: &FakeHub, name: &str) -> PathBuf {
    let other = hive.repo_dir(REPO).join("snapshots").join("c".repeat(40));
    std::fs::create_dir_all(&other).expect("second snapshot");
    let path = other.join(name);
    let target = Path::new("../../blobs").join(etag(hub, REPO, "model.gguf"));
    std::os::unix::fs::symlink(target, &path).expect("link");
    path
}

#[track_caller]
fn rm_json(hive: &Hive, args: &[&str]) -> RemoveReport {
    let mut all = vec!["model", "rm"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = rbee(hive, &all);
    out.assert_success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.dump()))
}

#[test]
fn rm_file_removes_its_link_and_only_unreferenced_blobs() {
    let (hub, hive) = with_downloads(&["model.gguf", "config.json"]);
    let shared = share_blob(&hive, &hub, "alias.gguf");
    let model_blob = blob(&hive, &hub, REPO, "model.gguf");

    let out = rbee(&hive, &["model", "rm", REPO, "model.gguf"]);
    out.assert_success().assert_stdout_contains(&format!("removed {REPO}:model.gguf: 1 link, 0 blobs, 0 partials"));
    assert!(!exists(&link(&hive, &hub, REPO, "model.gguf")), "snapshot link still there");
    assert!(model_blob.is_file(), "a blob another snapshot references was removed");
    assert_eq!(std::fs::read(&shared).expect("shared link still resolves").len(), 1 << 20);
    assert!(link(&hive, &hub, REPO, "config.json").is_file(), "another file was touched");

    let report = rm_json(&hive, &[REPO, "alias.gguf"]);
    assert_eq!(report, RemoveReport { links: 1, blobs: 1, partials: 0, bytes: 1 << 20 });
    assert!(!exists(&model_blob) && !exists(&shared), "the last reference went, so does the blob");
    assert!(link(&hive, &hub, REPO, "config.json").is_file());
    assert!(blob(&hive, &hub, REPO, "config.json").is_file());
}

#[test]
fn rm_file_also_removes_its_partial() {
    let (hub, hive) = with_downloads(&["model.gguf"]);
    let partial = make_partial(&hive, &hub);
    let report = rm_json(&hive, &[REPO, BIG]);
    assert_eq!(report, RemoveReport { links: 0, blobs: 0, partials: 1, bytes: partial });
    assert!(!exists(&partial_path(&hive, &hub)));
    assert!(link(&hive, &hub, REPO, "model.gguf").is_file(), "other files stay");
}

#[test]
fn rm_partial_removes_only_incomplete_files() {
    let (hub, hive) = with_downloads(&["model.gguf"]);
    let partial = make_partial(&hive, &hub);
    let out = rbee(&hive, &["model", "rm", REPO, "--partial"]);
    out.assert_success().assert_stdout_contains("0 links, 0 blobs, 1 partial");
    assert!(!exists(&partial_path(&hive, &hub)), "partial still there");
    assert!(link(&hive, &hub, REPO, "model.gguf").is_file(), "--partial removed a finished file");
    assert!(blob(&hive, &hub, REPO, "model.gguf").is_file());
    assert!(hive.repo_dir(REPO).join("refs/main").exists());
    // The listing agrees, and knows the partial is gone.
    let out = rbee(&hive, &["model", "list", "--json"]);
    let listing: ModelListing = serde_json::from_str(&out.stdout).expect("json");
    let files: Vec<_> = listing.repos[0].files.iter().map(|f| (f.file.as_str(), f.partial)).collect();
    assert_eq!(files, [("model.gguf", false)]);
    assert!(partial > 0);
}

#[test]
fn rm_repo_removes_links_blobs_partials_and_locks() {
    let (hub, hive) = with_downloads(&[]);
    let partial = fill(&hive, &hub);
    let report = rm_json(&hive, &[REPO]);
    assert_eq!(report, RemoveReport { links: 2, blobs: 2, partials: 1, bytes: (1 << 20) + 96 + partial });
    assert!(!exists(&hive.repo_dir(REPO)), "repo folder still there");
    let locks = hive.cache_dir().join(".locks").join(format!("models--{}", REPO.replace('/', "--")));
    assert!(!exists(&locks), "lock folder still there");
    assert!(link(&hive, &hub, OTHER, "model.gguf").is_file(), "another repo was touched");
    let out = rbee(&hive, &["model", "list"]);
    out.assert_success().assert_stdout_contains(OTHER);
    assert!(!out.stdout.contains(&format!("📦 {REPO} ")), "{}", out.dump());
}

#[test]
fn removing_a_repo_that_is_not_cached_is_a_404() {
    let (_hub, hive) = with_downloads(&[]);
    let (status, body) = hive.delete("/v1/models/rbee-test/not-cached");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "model_not_found", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("rbee-test/not-cached")), "{body}");
    let out = rbee(&hive, &["model", "rm", "rbee-test/not-cached"]);
    out.assert_code(1).assert_stderr_contains("rbee-test/not-cached");
    download(&hive, REPO, "config.json");
    let (status, body) = hive.delete("/v1/models/rbee-test/tiny-model?file=config.json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["links"], 1, "{body}");
    // A file with nothing left to remove is a 404 that names it, not a silent success.
    let (status, body) = hive.delete("/v1/models/rbee-test/tiny-model?file=config.json");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "file_not_found", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("config.json")), "{body}");
}
