//! No link in the cache is ever followed (issue 24, "Symlinks in the cache are followed"): each
//! reproduction of the issue, made in a real hive's cache, now fails safe. A ref linked to a file
//! outside is never read (list, get, `GET /v1/models`, the mirror); a FIFO as a ref is refused at
//! once; `.incomplete`, `.meta`, `.lock`, `.parts` and `.partmap` linked outside are never written
//! through; `blobs/`, `snapshots/`, `refs/`, `.locks/`, the repo folder and `.rbee-quarantine`
//! linked to outside directories get nothing written, moved or deleted there. Every time, the
//! outside is byte-for-byte and mtime-for-mtime unchanged, and the link is left in place.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

use crate::harness::fixtures::{blob, cached_model, etag, hub_with_model, locks_dir, snapshot, MODEL, REPO};
use crate::harness::{disk_state, download_ok, http, Hive, Keeper, Output};

/// What the file outside the cache holds: it must never appear in any output.
const SECRET: &str = "OUTSIDE-THE-CACHE-secret-7f3a";
/// Big enough to travel in parts (the hive's parallel threshold is 8 MiB).
const PARTS_SIZE: u64 = 9 << 20;

/// A directory outside the cache: a secret file, a 64-hex-named file (a blob's name), a lock and
/// a subdirectory; what a link in the cache points at.
struct Outside {
    dir: TempDir,
}

type State = (BTreeMap<PathBuf, (u64, SystemTime)>, BTreeMap<PathBuf, Vec<u8>>);

impl Outside {
    fn new() -> Self {
        let dir = TempDir::new().expect("outside dir");
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        std::fs::write(dir.path().join("e".repeat(64)), SECRET).unwrap();
        std::fs::write(dir.path().join("x.lock"), SECRET).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/file"), SECRET).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn secret(&self) -> PathBuf {
        self.dir.path().join("secret")
    }

    /// Every name with its size and mtime, and every file's bytes.
    fn state(&self) -> State {
        let meta = disk_state(self.path());
        let bytes = meta.keys().filter(|p| p.is_file()).map(|p| (p.clone(), std::fs::read(p).unwrap())).collect();
        (meta, bytes)
    }

    #[track_caller]
    fn assert_unchanged(&self, before: &State, what: &str, hive: &Hive) {
        assert!(*before == self.state(), "{what}: something outside the cache changed\nlog:\n{}", hive.log());
    }
}

#[track_caller]
fn rbee(hive: &Hive, args: &[&str]) -> Output {
    Keeper::new().hive(hive).args(args).run()
}

/// Makes `link` (and its parent directories) a symlink to `target`, replacing a file there.
fn link(target: &Path, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(link);
    symlink(target, link).unwrap_or_else(|e| panic!("ln -s {} {}: {e}", target.display(), link.display()));
}

#[track_caller]
fn assert_link_kept(path: &Path) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{} was removed: {e}", path.display()));
    assert!(meta.file_type().is_symlink(), "{} is no longer the link it was", path.display());
}

/// A `GET` of `path` that must answer within [`http`]'s read timeout (a hang fails it).
#[track_caller]
fn get(hive: &Hive, path: &str) -> http::Response {
    let started = Instant::now();
    let url = format!("{}{path}", hive.url());
    let r = http::request("GET", &url, &[], None).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", hive.log()));
    assert!(started.elapsed() < Duration::from_secs(5), "GET {path} took {:?}", started.elapsed());
    r
}

#[test]
fn a_ref_linked_outside_is_never_read() {
    let (_hub, hive) = cached_model(64 << 10);
    let outside = Outside::new();
    let passwd = hive.repo_dir(REPO).join("refs/passwd");
    link(&outside.secret(), &passwd);
    let before = outside.state();
    for args in [&["model", "list"][..], &["model", "list", "--json"], &["model", "get", REPO]] {
        rbee(&hive, args).assert_success().assert_nowhere(SECRET);
    }
    let listing = get(&hive, "/v1/models");
    assert_eq!(listing.status, 200, "{}", listing.text());
    assert!(!listing.text().contains(SECRET), "GET /v1/models printed the outside file: {}", listing.text());
    assert!(listing.text().contains("main"), "the good ref is still listed: {}", listing.text());
    let mirror = get(&hive, &format!("/hf/{REPO}/resolve/passwd/{MODEL}"));
    assert_eq!(mirror.status, 404, "{}", mirror.text());
    assert!(!mirror.text().contains(SECRET));
    assert!(hive.log().contains("refs/passwd") && hive.log().contains("is a symlink"), "{}", hive.log());
    outside.assert_unchanged(&before, "listing", &hive);
    assert_link_kept(&passwd);
}

#[test]
fn a_fifo_as_a_ref_is_refused_at_once() {
    let (_hub, hive) = cached_model(64 << 10);
    let fifo = hive.repo_dir(REPO).join("refs/fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let listing = get(&hive, "/v1/models");
    assert_eq!(listing.status, 200, "{}", listing.text());
    let resolve = get(&hive, &format!("/hf/{REPO}/resolve/fifo/{MODEL}"));
    assert_eq!(resolve.status, 404, "{}", resolve.text());
    let info = get(&hive, &format!("/hf/api/models/{REPO}/revision/fifo"));
    assert_eq!(info.status, 404, "{}", info.text());
    assert_eq!(get(&hive, &format!("/hf/{REPO}/resolve/main/{MODEL}")).status, 200, "main still served");
    rbee(&hive, &["model", "list"]).assert_success();
    assert!(hive.log().contains("refs/fifo") && hive.log().contains("is a FIFO"), "{}", hive.log());
    assert!(std::fs::symlink_metadata(&fifo).is_ok(), "the FIFO was removed");
}

/// The files of one download, as links to a file outside: each is refused, the download fails
/// naming it, and nothing is written through it.
#[test]
fn partial_download_files_linked_outside_are_never_written_through() {
    let hub = hub_with_model(PARTS_SIZE);
    let hive = Hive::builder().hub(&hub).retries(0).spawn();
    let incomplete = |file: &str| hive.repo_dir(REPO).join("blobs").join(format!("{}.incomplete", etag(&hub, file)));
    let beside_lock = |ext: &str| locks_dir(&hive).join(format!("{}.{ext}", etag(&hub, MODEL)));
    let cases = [
        ("config.json", incomplete("config.json")), // one stream
        (MODEL, incomplete(MODEL)),                 // in parts: the prefix taken over
        (MODEL, beside_lock("meta")),
        (MODEL, beside_lock("lock")),
        (MODEL, beside_lock("parts")),
        (MODEL, beside_lock("partmap")),
    ];
    let outside = Outside::new();
    // Each name twice: linked to a file outside, and dangling (nothing may be created through it).
    let twice = cases
        .iter()
        .flat_map(|(f, p)| [(*f, p.clone(), outside.secret()), (*f, p.clone(), outside.path().join("new"))]);
    for (file, path, target) in twice {
        link(&target, &path);
        let before = outside.state();
        let out = rbee(&hive, &["model", "download", REPO, file]);
        out.assert_code(1);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.assert_stderr_contains(&name).assert_stderr_contains("is a symlink");
        outside.assert_unchanged(&before, &name, &hive);
        assert_link_kept(&path);
        std::fs::remove_file(&path).unwrap();
    }
    download_ok(&hive, REPO, Some(MODEL), None);
    assert_eq!(std::fs::read(snapshot(&hive, &hub, MODEL)).unwrap(), hub.file_bytes(REPO, MODEL));
}

/// Each directory of the layout, as a link to a directory outside: download, list, verify and
/// remove write, move and delete nothing there.
#[test]
fn layout_directories_linked_outside_get_nothing_written_moved_or_deleted() {
    let hub = hub_with_model(64 << 10);
    let folder = hive_folder();
    let cases = [
        format!("{folder}/blobs"),
        format!("{folder}/snapshots"),
        format!("{folder}/refs"),
        folder.clone(),
        ".locks".to_owned(),
        format!(".locks/{folder}"),
    ];
    for case in cases {
        let hive = Hive::builder().hub(&hub).retries(0).spawn();
        let outside = Outside::new();
        let path = hive.cache_dir().join(&case);
        link(outside.path(), &path);
        let before = outside.state();
        let out = rbee(&hive, &["model", "download", REPO, MODEL]);
        out.assert_code(1).assert_stderr_contains("is a symlink");
        for args in
            [&["model", "list"][..], &["model", "verify"], &["model", "rm", REPO], &["model", "rm", REPO, MODEL]]
        {
            rbee(&hive, args).assert_nowhere(SECRET);
        }
        outside.assert_unchanged(&before, &case, &hive);
        assert_link_kept(&path);
    }
}

/// `model_verify` over a `blobs/` linked outside does not move the outside 64-hex file; with
/// `.rbee-quarantine` linked outside, a corrupt blob stays where it is.
#[test]
fn verify_moves_nothing_through_a_link() {
    let hub = hub_with_model(64 << 10);
    let hive = Hive::spawn(&hub);
    let outside = Outside::new();
    link(outside.path(), &hive.cache_dir().join(format!("{}/blobs", hive_folder())));
    let before = outside.state();
    rbee(&hive, &["model", "verify"]).assert_nowhere(SECRET);
    outside.assert_unchanged(&before, "verify over blobs/", &hive);

    let hive = Hive::spawn(&hub);
    download_ok(&hive, REPO, Some(MODEL), None);
    let blob = blob(&hive, &hub, MODEL);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[3] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let quarantine = hive.cache_dir().join(".rbee-quarantine");
    link(outside.path(), &quarantine);
    let before = outside.state();
    rbee(&hive, &["model", "verify"]).assert_code(1).assert_stderr_contains("is a symlink");
    outside.assert_unchanged(&before, "verify into .rbee-quarantine", &hive);
    assert_eq!(std::fs::read(&blob).unwrap(), bytes, "the blob stays in place");
    assert_link_kept(&quarantine);
}

/// `model_delete` with `.locks/` (or the repo's lock folder) linked outside deletes nothing there.
#[test]
fn delete_with_locks_linked_outside_deletes_nothing_there() {
    let hub = hub_with_model(64 << 10);
    for case in [".locks".to_owned(), format!(".locks/{}", hive_folder())] {
        let hive = Hive::spawn(&hub);
        download_ok(&hive, REPO, Some(MODEL), None);
        let outside = Outside::new();
        let path = hive.cache_dir().join(&case);
        std::fs::remove_dir_all(&path).unwrap();
        link(outside.path(), &path);
        let before = outside.state();
        let out = rbee(&hive, &["model", "rm", REPO]);
        out.assert_code(1).assert_stderr_contains("symlink");
        outside.assert_unchanged(&before, &case, &hive);
        assert_link_kept(&path);
        assert!(snapshot(&hive, &hub, MODEL).exists(), "refused: nothing of the repo removed either");
    }
}

/// `models--rbee-test--tiny-model`.
fn hive_folder() -> String {
    format!("models--{}", REPO.replace('/', "--"))
}
