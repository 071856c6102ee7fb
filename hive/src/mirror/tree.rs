//! `GET /hf/api/models/{repo}/tree/{revision}[/{path}]`: a revision's files and folders as the hub
//! lists them for `list_repo_tree`, which `snapshot_download` and `hf download` read to know what
//! to fetch (paths, sizes, git blob ids, LFS sha256).
//!
//! As the hub: `recursive` lists everything below `path` (folders too), else its immediate
//! children; `expand` pages by 50 instead of 1000 (the commit and security fields it would add are
//! not known to a cache and are left out, which huggingface_hub accepts); further pages are
//! linked with `Link: <…&cursor=N>; rel="next"`. Entries are
//! `{"type":"file","oid":<git blob id>,"size":n,"path":p[,"lfs":{"oid":<sha256>,"size":n,"pointerSize":m}]}`
//! and `{"type":"directory","oid":<git tree id>,"size":0,"path":p}`. An LFS file's git blob is
//! its pointer, whose id and size follow from the sha256 and size; a folder's id is git's tree id
//! over what is listed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use super::{commit_of, repo_dir, MirrorError};

/// Entries per page, as the hub pages them.
const PAGE: usize = 1000;
/// Entries per page with `expand`.
const EXPANDED_PAGE: usize = 50;

/// One file of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Path in the repo.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Its git blob id (for an LFS file: the pointer's).
    pub oid: String,
    /// The sha256 of an LFS file.
    pub lfs: Option<String>,
}

impl TreeFile {
    /// A file known by its cache etag: a 64-hex etag is an LFS sha256 (its git blob is the pointer),
    /// a 40-hex one the git blob id itself.
    #[must_use]
    pub fn from_etag(path: String, size: u64, etag: &str) -> Self {
        if etag.len() == 64 {
            Self {
                path,
                size,
                oid: hex::encode(git_blob_id(pointer(etag, size).as_bytes())),
                lfs: Some(etag.to_owned()),
            }
        } else {
            Self { path, size, oid: etag.to_owned(), lfs: None }
        }
    }

    /// Its sibling in the hub's repo info with `blobs=true`.
    #[must_use]
    pub fn sibling(&self) -> Value {
        let mut sibling = json!({ "rfilename": self.path, "size": self.size, "blobId": self.oid });
        if let Some(sha) = &self.lfs {
            let pointer_size = pointer(sha, self.size).len();
            sibling["lfs"] = json!({ "sha256": sha, "size": self.size, "pointerSize": pointer_size });
        }
        sibling
    }

    fn entry(&self) -> Value {
        let mut entry = json!({ "type": "file", "oid": self.oid, "size": self.size, "path": self.path });
        if let Some(sha) = &self.lfs {
            let pointer_size = pointer(sha, self.size).len();
            entry["lfs"] = json!({ "oid": sha, "size": self.size, "pointerSize": pointer_size });
        }
        entry
    }
}

/// The git-lfs pointer that stands for an LFS file in git.
fn pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

fn git_blob_id(content: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    h.finalize().into()
}

/// The commit of `revision` and its cached files (blocking).
///
/// # Errors
/// When a name is invalid, or the repo or revision is not cached.
pub fn cached(cache: &Path, repo: &str, revision: &str) -> Result<(String, Vec<TreeFile>), MirrorError> {
    let dir = repo_dir(cache, repo, revision)?;
    let commit = commit_of(&dir, repo, revision)?;
    let files = dir
        .snapshot_files(&commit)
        .into_iter()
        .filter_map(|path| {
            let etag = dir.linked_etag(&dir.pointer(&commit, &path))?;
            let meta = std::fs::symlink_metadata(dir.blob(&etag)).ok().filter(std::fs::Metadata::is_file)?;
            Some(TreeFile::from_etag(path, meta.len(), &etag))
        })
        .collect();
    Ok((commit, files))
}

/// What a tree request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeAsk {
    /// Repo id.
    pub repo: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// The folder listed (`""`: the root).
    pub path: String,
    /// Everything below it, not only its children.
    pub recursive: bool,
    /// The hub's `expand` (smaller pages).
    pub expand: bool,
    /// The index of the page's first entry.
    pub cursor: usize,
}

/// One page of the listing, and the cursor of the next one.
///
/// # Errors
/// [`MirrorError::EntryNotFound`] when `ask.path` is no folder of the revision.
pub fn page(ask: &TreeAsk, files: &[TreeFile]) -> Result<(Vec<Value>, Option<usize>), MirrorError> {
    let entries = entries(files);
    let base = ask.path.trim_matches('/');
    let under = |p: &str| base.is_empty() || p.strip_prefix(base).is_some_and(|rest| rest.starts_with('/'));
    if !base.is_empty() && !matches!(entries.get(base), Some(Entry::Dir(_))) {
        return Err(MirrorError::EntryNotFound {
            repo: ask.repo.clone(),
            revision: ask.revision.clone(),
            file: base.to_owned(),
        });
    }
    let depth = |p: &str| p.matches('/').count();
    let wanted = entries.iter().filter(|(p, _)| under(p) && (ask.recursive || depth(p) == depth_of(base)));
    let size = if ask.expand { EXPANDED_PAGE } else { PAGE };
    let all: Vec<_> = wanted.skip(ask.cursor).take(size + 1).collect();
    let next = (all.len() > size).then_some(ask.cursor + size);
    Ok((all.into_iter().take(size).map(|(p, e)| e.json(p)).collect(), next))
}

/// How deep the children of `base` are (`a/b` → 2: `a/b/c` has two slashes).
fn depth_of(base: &str) -> usize {
    if base.is_empty() {
        0
    } else {
        base.matches('/').count() + 1
    }
}

/// A listed path.
enum Entry<'a> {
    File(&'a TreeFile),
    /// A folder, with its git tree id.
    Dir([u8; 20]),
}

impl Entry<'_> {
    fn json(&self, path: &str) -> Value {
        match self {
            Self::File(f) => f.entry(),
            Self::Dir(oid) => json!({ "type": "directory", "oid": hex::encode(oid), "size": 0, "path": path }),
        }
    }
}

/// Every file and every folder above one, by path (a folder sorts before what it holds).
fn entries(files: &[TreeFile]) -> BTreeMap<String, Entry<'_>> {
    let mut out: BTreeMap<String, Entry<'_>> = files.iter().map(|f| (f.path.clone(), Entry::File(f))).collect();
    let dirs: std::collections::BTreeSet<String> = files
        .iter()
        .flat_map(|f| f.path.match_indices('/').map(|(i, _)| f.path[..i].to_owned()).collect::<Vec<_>>())
        .collect();
    // Deepest first: a folder's id needs its subfolders'.
    let mut by_depth: Vec<&String> = dirs.iter().collect();
    by_depth.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for dir in by_depth {
        let id = tree_id(&out, dir);
        out.insert(dir.clone(), Entry::Dir(id));
    }
    out
}

/// git's tree id of `dir` over its children in `entries`.
fn tree_id(entries: &BTreeMap<String, Entry<'_>>, dir: &str) -> [u8; 20] {
    let prefix = format!("{dir}/");
    let mut children: Vec<(String, &str, [u8; 20])> = entries
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .filter(|(p, _)| !p[prefix.len()..].contains('/'))
        .filter_map(|(p, e)| {
            let name = &p[prefix.len()..];
            let oid = match e {
                Entry::File(f) => <[u8; 20]>::try_from(hex::decode(&f.oid).ok()?).ok()?,
                Entry::Dir(id) => *id,
            };
            // git sorts a folder as if its name ended in `/`.
            let key = if matches!(e, Entry::Dir(_)) { format!("{name}/") } else { name.to_owned() };
            Some((key, if matches!(e, Entry::Dir(_)) { "40000" } else { "100644" }, oid))
        })
        .collect();
    children.sort_by(|a, b| a.0.cmp(&b.0));
    let mut body = Vec::new();
    for (key, mode, oid) in children {
        body.extend_from_slice(format!("{mode} {}\0", key.trim_end_matches('/')).as_bytes());
        body.extend_from_slice(&oid);
    }
    let mut h = Sha1::new();
    h.update(format!("tree {}\0", body.len()).as_bytes());
    h.update(&body);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<TreeFile> {
        vec![
            TreeFile::from_etag("config.json".into(), 5, &"1".repeat(40)),
            TreeFile::from_etag("sub/deep/m.gguf".into(), 7, &"a".repeat(64)),
            TreeFile::from_etag("sub/x.txt".into(), 3, &"2".repeat(40)),
        ]
    }

    fn ask(path: &str, recursive: bool) -> TreeAsk {
        TreeAsk { repo: "o/n".into(), revision: "main".into(), path: path.into(), recursive, expand: false, cursor: 0 }
    }

    fn paths(ask: &TreeAsk) -> Vec<String> {
        page(ask, &files()).unwrap().0.iter().map(|e| e["path"].as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn lists_children_or_everything_below() {
        assert_eq!(paths(&ask("", false)), ["config.json", "sub"]);
        assert_eq!(paths(&ask("", true)), ["config.json", "sub", "sub/deep", "sub/deep/m.gguf", "sub/x.txt"]);
        assert_eq!(paths(&ask("sub", false)), ["sub/deep", "sub/x.txt"]);
        assert_eq!(paths(&ask("sub/deep", true)), ["sub/deep/m.gguf"]);
        assert!(matches!(page(&ask("nope", false), &files()), Err(MirrorError::EntryNotFound { .. })));
        assert!(page(&ask("config.json", false), &files()).is_err(), "a file is no folder");
    }

    #[test]
    fn lfs_files_carry_their_pointer() {
        let (entries, _) = page(&ask("sub/deep", false), &files()).unwrap();
        let lfs = &entries[0]["lfs"];
        assert_eq!((lfs["oid"].as_str(), lfs["size"].as_u64()), (Some("a".repeat(64).as_str()), Some(7)));
        let pointer = pointer(&"a".repeat(64), 7);
        assert_eq!(lfs["pointerSize"].as_u64(), Some(pointer.len() as u64));
        // git hash-object of that pointer text.
        assert_eq!(entries[0]["oid"].as_str().unwrap(), hex::encode(git_blob_id(pointer.as_bytes())));
        assert_eq!(hex::encode(git_blob_id(b"")), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }

    #[test]
    fn pages_link_on() {
        let many: Vec<TreeFile> =
            (0..120).map(|i| TreeFile::from_etag(format!("f{i:03}"), 1, &format!("{i:040}"))).collect();
        let mut ask = ask("", true);
        ask.expand = true;
        let (first, next) = page(&ask, &many).unwrap();
        assert_eq!((first.len(), next), (50, Some(50)));
        ask.cursor = 100;
        let (last, next) = page(&ask, &many).unwrap();
        assert_eq!((last.len(), next), (20, None));
    }

    #[test]
    fn a_folder_id_is_gits() {
        // `git mktree` of one empty file `a`: 496d6428b9cf92981dc9495211e6e1120fb6f2ba.
        let files = [TreeFile::from_etag("d/a".into(), 0, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391")];
        let (entries, _) = page(&ask("", false), &files).unwrap();
        assert_eq!(entries[0]["oid"], "496d6428b9cf92981dc9495211e6e1120fb6f2ba");
    }
}
