//! Listing and removing cached models (`rbee model list` / `rbee model rm`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rbee_protocol::{CachedFile, CachedRepo, ModelListing, RemoveReport};

use super::fs::{self, Kind};
use super::{folder_name, CacheError, RepoDir};

/// Why a removal was refused or failed. Nothing is deleted when it is refused.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// A download is writing what would be removed.
    #[error("{what} is being downloaded{}; wait for it, cancel it{}, or remove with `force`", by.as_ref().map(|j| format!(" by job `{j}`")).unwrap_or_else(|| " by another process (its lock is held)".to_owned()), by.as_ref().map(|j| format!(" (`rbee job cancel {j}`)")).unwrap_or_default())]
    InUse {
        /// The repo or file.
        what: String,
        /// The job of this hive doing it, if it is ours.
        by: Option<String>,
    },
    /// A directory of the repo is a symlink: scanning or removing through it could reach
    /// files outside the cache.
    #[error("`{}` is a symlink (to `{}`): refusing to scan or remove through it; remove the link by hand if it is meant", path.display(), target.display())]
    Symlink {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// The OS refused.
    #[error(transparent)]
    Io(#[from] CacheError),
}

impl RepoDir {
    /// Refuses a repo whose directory, `blobs/`, `snapshots/` or `refs/` (or its lock directory)
    /// is a symlink (`lstat`, never followed).
    ///
    /// # Errors
    /// [`RemoveError::Symlink`] naming the link.
    pub fn check_no_symlinks(&self) -> Result<(), RemoveError> {
        let paths = [
            self.root().to_owned(),
            self.root().join("blobs"),
            self.root().join("snapshots"),
            self.root().join("refs"),
            self.locks.clone(),
        ];
        for path in paths {
            if let Some(target) = fs::read_link(&self.cache, &path) {
                return Err(RemoveError::Symlink { path, target });
            }
            // A directory above it refused (a link higher up, a FIFO…) is refused as well.
            fs::entry(&self.cache, &path)?;
        }
        Ok(())
    }

    /// Whether another open of `{etag}.lock` holds it (a download in this or another process).
    fn lock_held(&self, path: &Path) -> bool {
        let Ok(Some(file)) = fs::open(&self.cache, path, fs::Open::Read) else { return false };
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(std::fs::TryLockError::Error(_)) => false,
        }
    }

    /// The etags whose lock is held right now.
    fn held_locks(&self) -> Vec<String> {
        names(&self.cache, &self.locks)
            .into_iter()
            .filter(|e| e.kind == Kind::File)
            .filter_map(|e| e.name.strip_suffix(".lock").map(str::to_owned))
            .filter(|etag| self.lock_held(&self.lock_path(etag)))
            .collect()
    }
}

/// What a partial download is of, recorded beside its lock as `{etag}.meta`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PartialMeta {
    /// File inside the repo.
    pub file: String,
    /// Expected size.
    pub size: Option<u64>,
}

impl RepoDir {
    /// Records what `{etag}` is of, atomically; `durable` once its blob is published (its size
    /// is then what a later cache hit checks the blob against when the hub is not asked).
    ///
    /// # Errors
    /// When it cannot be written (or its directory is a link).
    pub fn write_meta(&self, etag: &str, meta: &PartialMeta, durable: bool) -> Result<(), CacheError> {
        let (path, bytes) = (self.meta_path(etag), serde_json::to_vec(meta).unwrap_or_default());
        if durable {
            fs::write_atomic(&self.cache, &path, &bytes)
        } else {
            fs::replace(&self.cache, &path, &bytes)
        }
    }

    /// `.locks/models--org--name/{etag}.meta`.
    fn meta_path(&self, etag: &str) -> PathBuf {
        self.lock_path(etag).with_extension("meta")
    }

    /// What `{etag}.meta` records, if anything.
    #[must_use]
    pub fn read_meta(&self, etag: &str) -> Option<PartialMeta> {
        serde_json::from_slice(&self.read_small(&self.meta_path(etag), META_MAX)?).ok()
    }
}

/// Most bytes a `.meta` may hold.
const META_MAX: u64 = 64 << 10;

/// The entries of directory `path` of the cache (none when missing; logged when refused).
fn names(cache: &Path, path: &Path) -> Vec<fs::Entry> {
    fs::entries(cache, path).unwrap_or_else(|e| {
        log::warn!("{e}");
        Vec::new()
    })
}

/// Every repo in the cache with its files, revisions and partial downloads.
///
/// # Errors
/// When the cache directory exists but cannot be read.
pub fn list(cache: &Path) -> Result<ModelListing, CacheError> {
    let mut repos = Vec::new();
    for entry in fs::entries(cache, cache)? {
        if let Some(rest) = entry.name.strip_prefix("models--") {
            let repo = rest.replacen("--", "/", 1);
            repos.push(scan_repo(&RepoDir::new(cache, &repo), repo));
        }
    }
    Ok(listing(cache, repos))
}

fn listing(cache: &Path, repos: Vec<CachedRepo>) -> ModelListing {
    ModelListing { cache_dir: cache.display().to_string(), repos }
}

fn scan_repo(dir: &RepoDir, repo: String) -> CachedRepo {
    if let Err(e) = dir.check_no_symlinks() {
        log::warn!("not listing `{}`: {e}", rbee_protocol::escape(&repo));
        return CachedRepo { repo, size: 0, refs: BTreeMap::new(), files: Vec::new() };
    }
    let mut files: BTreeMap<String, CachedFile> = BTreeMap::new();
    for (commit, file, blob) in links(dir) {
        // Only blobs of this repo count: a link pointing out of the cache is never followed.
        let size = dir.file_len(&blob).unwrap_or(0);
        let entry = files.entry(file.clone()).or_insert_with(|| CachedFile {
            file,
            size,
            revisions: Vec::new(),
            partial_percent: None,
            partial: false,
        });
        entry.revisions.push(commit);
    }
    let mut out: Vec<CachedFile> = files.into_values().collect();
    let mut size: u64 = blobs(dir).iter().map(|(_, s)| s).sum();
    for (etag, bytes) in partials(dir) {
        let meta = dir.read_meta(&etag);
        let total = meta.as_ref().and_then(|m| m.size);
        size += bytes;
        out.push(CachedFile {
            file: meta.map_or_else(|| format!("{etag}.incomplete"), |m| m.file),
            size: bytes,
            revisions: Vec::new(),
            partial_percent: total.filter(|t| *t > 0).map(|t| (bytes as f64 * 100.0 / t as f64).min(100.0)),
            partial: true,
        });
    }
    CachedRepo { repo, size, refs: refs(dir), files: out }
}

fn refs(dir: &RepoDir) -> BTreeMap<String, String> {
    let base = dir.root().join("refs");
    walk(dir, &base)
        .into_iter()
        .filter_map(|p| {
            let name = p.strip_prefix(&base).ok()?.to_string_lossy().into_owned();
            Some((name.clone(), dir.read_ref(&name)?))
        })
        .collect()
}

/// (commit, file, blob path) for every snapshot link.
fn links(dir: &RepoDir) -> Vec<(String, String, PathBuf)> {
    let snaps = dir.root().join("snapshots");
    let mut out = Vec::new();
    for commit in names(&dir.cache, &snaps) {
        if commit.kind != Kind::Dir {
            continue; // a symlinked `snapshots/<commit>` is never followed
        }
        let base = snaps.join(&commit.name);
        let name = commit.name;
        for link in walk(dir, &base) {
            let file = link.strip_prefix(&base).unwrap_or(&link).to_string_lossy().into_owned();
            let blob = blob_of(dir, &link).unwrap_or(link);
            out.push((name.clone(), file, blob));
        }
    }
    out
}

/// `blobs/<etag>` of this repo that a snapshot link points at (read, never followed), if any.
fn blob_of(dir: &RepoDir, link: &Path) -> Option<PathBuf> {
    dir.linked_etag(link).map(|etag| dir.blob(&etag))
}

impl RepoDir {
    /// The etag of the blob of this repo that the snapshot link `link` names as
    /// `../…/blobs/<etag>` (the link is read, never followed; anything else is `None`).
    #[must_use]
    pub fn linked_etag(&self, link: &Path) -> Option<String> {
        let target = fs::read_link(&self.cache, link)?;
        let etag = target.file_name()?.to_str()?;
        let inside = target.parent().and_then(Path::file_name).is_some_and(|d| d == "blobs") && !target.is_absolute();
        (inside && !etag.ends_with(".incomplete")).then(|| etag.to_owned())
    }

    /// The files of `snapshots/<commit>/` (relative paths, sorted) whose link names a finished
    /// blob of this repo.
    #[must_use]
    pub fn snapshot_files(&self, commit: &str) -> Vec<String> {
        let base = self.snapshot(commit);
        walk(self, &base)
            .into_iter()
            .filter(|link| self.linked_etag(link).is_some_and(|etag| self.file_len(&self.blob(&etag)).is_some()))
            .filter_map(|link| Some(link.strip_prefix(&base).ok()?.to_str()?.to_owned()))
            .collect()
    }
}

fn blobs(dir: &RepoDir) -> Vec<(String, u64)> {
    blob_entries(dir).into_iter().filter(|(n, _)| !n.ends_with(".incomplete")).collect()
}

/// Partial downloads: `blobs/<etag>.incomplete` (one stream) and `.locks/…/<etag>.parts` (in
/// parts), with the bytes each holds.
fn partials(dir: &RepoDir) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = blob_entries(dir)
        .into_iter()
        .filter_map(|(n, s)| n.strip_suffix(".incomplete").map(|e| (e.to_owned(), s)))
        .collect();
    for entry in names(&dir.cache, &dir.locks).into_iter().filter(|e| e.kind == Kind::File) {
        if let Some(etag) = entry.name.strip_suffix(".parts") {
            out.push((etag.to_owned(), parts_done(dir, etag)));
        }
    }
    out
}

/// Bytes of `<etag>.parts` its part map marks done.
fn parts_done(dir: &RepoDir, etag: &str) -> u64 {
    dir.read_part_map(&dir.part_files(etag).map).map_or(0, |map| map.done_bytes())
}

/// Deletes a partial download of `etag`, whichever form it has.
fn remove_partial(dir: &RepoDir, etag: &str) -> Result<(), CacheError> {
    fs::remove(&dir.cache, &dir.incomplete(etag), Kind::File)?;
    for path in dir.part_files(etag).all() {
        fs::remove(&dir.cache, path, Kind::File)?;
    }
    Ok(())
}

fn blob_entries(dir: &RepoDir) -> Vec<(String, u64)> {
    names(&dir.cache, &dir.root().join("blobs"))
        .into_iter()
        .filter(|e| e.kind == Kind::File)
        .map(|e| (e.name, e.len))
        .collect()
}

/// Files and symlinks under `base` of the repo, recursively (directory links never followed).
pub(crate) fn walk(dir: &RepoDir, base: &Path) -> Vec<PathBuf> {
    fs::walk(&dir.cache, base)
}

/// Removes snapshot links of `file` (or of the whole repo), blobs no link references any more,
/// and partial downloads. With `partial_only`, removes only `.incomplete` files.
///
/// Refuses, deleting nothing, when a directory of the repo is a symlink or a download holds the
/// lock of a partial it would delete (see [`RemoveError`]).
///
/// # Errors
/// When refused, or when a file cannot be removed.
pub fn remove(cache: &Path, repo: &str, file: Option<&str>, partial_only: bool) -> Result<RemoveReport, RemoveError> {
    let dir = RepoDir::new(cache, repo);
    dir.check_no_symlinks()?;
    let held = dir.held_locks();
    let busy =
        held.iter().find(|etag| file.is_none() || dir.read_meta(etag).is_some_and(|m| Some(m.file.as_str()) == file));
    if busy.is_some() {
        let what = file.map_or_else(|| format!("`{repo}`"), |f| format!("`{repo}/{f}`"));
        return Err(RemoveError::InUse { what, by: None });
    }
    let mut report = RemoveReport { links: 0, blobs: 0, partials: 0, bytes: 0 };
    if !partial_only {
        for (_, f, link) in links(&dir).into_iter().map(|(c, f, _)| (c.clone(), f.clone(), dir.pointer(&c, &f))) {
            if file.is_none_or(|want| want == f) {
                fs::remove(cache, &link, Kind::Link)?;
                report.links += 1;
            }
        }
        let referenced: HashSet<PathBuf> = links(&dir).into_iter().map(|(_, _, b)| b).collect();
        for (etag, size) in blobs(&dir) {
            let blob = dir.blob(&etag);
            if !referenced.contains(&blob) {
                fs::remove(cache, &blob, Kind::File)?;
                report.blobs += 1;
                report.bytes += size;
            }
        }
    }
    for (etag, size) in partials(&dir) {
        let of_file = dir.read_meta(&etag).map(|m| m.file);
        if file.is_none() || of_file.as_deref() == file {
            remove_partial(&dir, &etag)?;
            fs::remove(cache, &dir.meta_path(&etag), Kind::File)?;
            report.partials += 1;
            report.bytes += size;
        }
    }
    if file.is_none() && !partial_only {
        fs::remove_tree(cache, dir.root())?;
        fs::remove_tree(cache, &cache.join(".locks").join(folder_name(repo)))?;
    }
    Ok(report)
}
