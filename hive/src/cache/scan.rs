//! Listing and removing cached models (`rbee model list` / `rbee model rm`).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use rbee_protocol::{CachedFile, CachedRepo, ModelListing, RemoveReport};

use super::{at, folder_name, CacheError, RepoDir};

/// What a partial download is of, recorded beside its lock as `{etag}.meta`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PartialMeta {
    /// File inside the repo.
    pub file: String,
    /// Expected size.
    pub size: Option<u64>,
}

impl RepoDir {
    /// Records what `{etag}.incomplete` is of.
    pub fn write_meta(&self, etag: &str, meta: &PartialMeta) {
        let path = self.lock_path(etag).with_extension("meta");
        let _ = super::create_parent(&path);
        let _ = fs::write(path, serde_json::to_vec(meta).unwrap_or_default());
    }

    fn read_meta(&self, etag: &str) -> Option<PartialMeta> {
        let text = fs::read(self.lock_path(etag).with_extension("meta")).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// Every repo in the cache with its files, revisions and partial downloads.
///
/// # Errors
/// When the cache directory exists but cannot be read.
pub fn list(cache: &Path) -> Result<ModelListing, CacheError> {
    let mut repos = Vec::new();
    let entries = match fs::read_dir(cache) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(listing(cache, repos)),
        Err(e) => return Err(at(cache)(e)),
    };
    let mut names: Vec<String> =
        entries.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    for name in names {
        if let Some(rest) = name.strip_prefix("models--") {
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
    let mut files: BTreeMap<String, CachedFile> = BTreeMap::new();
    for (commit, file, blob) in links(dir) {
        let size = fs::metadata(&blob).map(|m| m.len()).unwrap_or(0);
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
    walk(&base)
        .into_iter()
        .filter_map(|p| {
            let name = p.strip_prefix(&base).ok()?.to_string_lossy().into_owned();
            Some((name, fs::read_to_string(&p).ok()?.trim().to_owned()))
        })
        .collect()
}

/// (commit, file, blob path) for every snapshot link.
fn links(dir: &RepoDir) -> Vec<(String, String, PathBuf)> {
    let snaps = dir.root().join("snapshots");
    let Ok(commits) = fs::read_dir(&snaps) else { return Vec::new() };
    let mut out = Vec::new();
    for commit in commits.filter_map(Result::ok) {
        let base = commit.path();
        let name = commit.file_name().to_string_lossy().into_owned();
        for link in walk(&base) {
            let file = link.strip_prefix(&base).unwrap_or(&link).to_string_lossy().into_owned();
            let blob = fs::canonicalize(&link).unwrap_or(link);
            out.push((name.clone(), file, blob));
        }
    }
    out
}

fn blobs(dir: &RepoDir) -> Vec<(String, u64)> {
    blob_entries(dir).into_iter().filter(|(n, _)| !n.ends_with(".incomplete")).collect()
}

fn partials(dir: &RepoDir) -> Vec<(String, u64)> {
    blob_entries(dir)
        .into_iter()
        .filter_map(|(n, s)| n.strip_suffix(".incomplete").map(|e| (e.to_owned(), s)))
        .collect()
}

fn blob_entries(dir: &RepoDir) -> Vec<(String, u64)> {
    let Ok(rd) = fs::read_dir(dir.root().join("blobs")) else { return Vec::new() };
    rd.filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
        .collect()
}

/// Files (and symlinks) under `base`, recursively.
fn walk(base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![base.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.filter_map(Result::ok) {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => out.push(e.path()),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// Removes snapshot links of `file` (or of the whole repo), blobs no link references any more,
/// and partial downloads. With `partial_only`, removes only `.incomplete` files.
///
/// # Errors
/// When a file cannot be removed.
pub fn remove(cache: &Path, repo: &str, file: Option<&str>, partial_only: bool) -> Result<RemoveReport, CacheError> {
    let dir = RepoDir::new(cache, repo);
    let mut report = RemoveReport { links: 0, blobs: 0, partials: 0, bytes: 0 };
    if !partial_only {
        for (_, f, link) in links(&dir).into_iter().map(|(c, f, _)| (c.clone(), f.clone(), dir.pointer(&c, &f))) {
            if file.is_none_or(|want| want == f) {
                fs::remove_file(&link).map_err(at(&link))?;
                report.links += 1;
            }
        }
        let referenced: HashSet<PathBuf> = links(&dir).into_iter().map(|(_, _, b)| b).collect();
        for (etag, size) in blobs(&dir) {
            let blob = dir.blob(&etag);
            let canon = fs::canonicalize(&blob).unwrap_or_else(|_| blob.clone());
            if !referenced.contains(&canon) {
                fs::remove_file(&blob).map_err(at(&blob))?;
                report.blobs += 1;
                report.bytes += size;
            }
        }
    }
    for (etag, size) in partials(&dir) {
        let of_file = dir.read_meta(&etag).map(|m| m.file);
        if file.is_none() || of_file.as_deref() == file {
            let p = dir.incomplete(&etag);
            fs::remove_file(&p).map_err(at(&p))?;
            let _ = fs::remove_file(dir.lock_path(&etag).with_extension("meta"));
            report.partials += 1;
            report.bytes += size;
        }
    }
    if file.is_none() && !partial_only && dir.root().exists() {
        fs::remove_dir_all(dir.root()).map_err(at(dir.root()))?;
        let _ = fs::remove_dir_all(cache.join(".locks").join(folder_name(repo)));
    }
    Ok(report)
}
