//! `rbee model verify [org/repo]` (the `model_verify` operation), like `hf cache verify`: every
//! finished blob is re-hashed against its name — sha256 for LFS blobs (64 hex), git's blob sha1
//! for the rest (40 hex); other names cannot be checked and are counted as such.
//!
//! A mismatch is never deleted: the blob moves to `<cache>/.rbee-quarantine/<repo folder>/<etag>`,
//! the snapshot links that pointed at it are removed (so no tool serves it), and
//! `<etag>.json` beside it records the hashes and every removed link, so a person can put it back
//! (`mv` the blob to `blobs/<etag>`, recreate each link). A quarantine never overwrites: a second
//! quarantine of the same blob goes to `<etag>.2` with its record `<etag>.2.json`, and so on.
//! Every name is walked without following a link ([`super::fs`]): a symlinked `blobs/` or
//! `.rbee-quarantine` is refused, never read or moved through. Hashing runs in chunks on blocking
//! threads with an `.await` between them, so a cancel stops it within one chunk.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::fs::{self, Kind, Open};
use super::{at, folder_name, CacheError, RepoDir};
use crate::jobs::JobCtx;

/// Bytes hashed per step.
const CHUNK: usize = 4 << 20;
/// Where mismatching blobs go, under the cache.
pub const QUARANTINE: &str = ".rbee-quarantine";

/// One quarantined blob.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quarantined {
    /// Repo id.
    pub repo: String,
    /// The blob's name (what its content should hash to).
    pub etag: String,
    /// `sha256` or `git blob sha1`.
    pub algorithm: &'static str,
    /// What the content hashes to.
    pub actual: String,
    /// Where the blob is now.
    pub moved_to: String,
    /// The snapshot links removed (`snapshots/<commit>/<file>`), with their targets.
    pub links: Vec<(String, String)>,
}

/// What a verify found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Repos looked at.
    pub repos: usize,
    /// Blobs whose content matches their name.
    pub ok: usize,
    /// Blobs whose name is no digest (only a size could be checked, and there is none to check).
    pub unverifiable: usize,
    /// Blobs moved to the quarantine.
    pub quarantined: Vec<Quarantined>,
}

/// The repo ids cached (`models--org--name` → `org/name`), or just `only` when given.
///
/// # Errors
/// When `only` is not cached or the cache cannot be read.
pub fn repos(cache: &Path, only: Option<&str>) -> Result<Vec<String>, String> {
    if let Some(repo) = only {
        return if fs::is(cache, &cache.join(folder_name(repo)), Kind::Dir) {
            Ok(vec![repo.to_owned()])
        } else {
            Err(format!("`{}` is not in the cache at {}", rbee_protocol::escape(repo), cache.display()))
        };
    }
    let entries = fs::entries(cache, cache).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .filter(|e| e.kind == Kind::Dir)
        .filter_map(|e| e.name.strip_prefix("models--").map(|r| r.replacen("--", "/", 1)))
        .collect())
}

/// Verifies every blob of `repo`, quarantining mismatches into `report`.
///
/// # Errors
/// When a blob cannot be read or moved.
pub async fn repo(ctx: &JobCtx, cache: &Path, repo: &str, report: &mut Report) -> Result<(), CacheError> {
    let dir = RepoDir::new(cache, repo);
    let etags: Vec<String> = fs::entries(cache, &dir.root().join("blobs"))?
        .into_iter()
        .filter(|e| e.kind == Kind::File && !e.name.contains('.'))
        .map(|e| e.name)
        .collect();
    report.repos += 1;
    for etag in etags {
        let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
        let algorithm = match etag.len() {
            64 if hex => "sha256",
            40 if hex => "git blob sha1",
            _ => {
                report.unverifiable += 1;
                continue;
            }
        };
        let path = dir.blob(&etag);
        let file = dir.open(&path, Open::Read)?;
        let actual = hash(file, algorithm == "sha256").await.map_err(at(&path))?;
        if actual == etag.to_ascii_lowercase() {
            report.ok += 1;
            continue;
        }
        let q = quarantine(ctx, cache, &dir, repo, &etag, algorithm, actual).await?;
        ctx.narrate(format!(
            "❌ {repo}: blob {etag} ({}) fails its {algorithm} check: quarantined to {}",
            q.links.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(", "),
            q.moved_to
        ));
        report.quarantined.push(q);
    }
    Ok(())
}

/// Hex sha256, or git's blob sha1, of `file`, a chunk per blocking step.
async fn hash(mut file: std::fs::File, sha256: bool) -> std::io::Result<String> {
    let len = file.metadata()?.len();
    let mut s2 = sha2::Sha256::new();
    let mut s1 = sha1::Sha1::new();
    if !sha256 {
        s1.update(format!("blob {len}\0").as_bytes());
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        let (f, b, n) = smol::unblock(move || {
            use std::io::Read;
            let n = file.read(&mut buf);
            (file, buf, n)
        })
        .await;
        (file, buf) = (f, b);
        let n = n?;
        if n == 0 {
            break;
        }
        if sha256 {
            s2.update(&buf[..n]);
        } else {
            s1.update(&buf[..n]);
        }
    }
    Ok(if sha256 { hex::encode(s2.finalize()) } else { hex::encode(s1.finalize()) })
}

/// Moves the blob to the quarantine, removes the links to it, and writes the restore record.
async fn quarantine(
    ctx: &JobCtx,
    cache: &Path,
    dir: &RepoDir,
    repo: &str,
    etag: &str,
    algorithm: &'static str,
    actual: String,
) -> Result<Quarantined, CacheError> {
    let (cache, dir, repo, etag) = (cache.to_owned(), dir.clone(), repo.to_owned(), etag.to_owned());
    ctx.outstanding
        .unblock(move || {
            let qdir: PathBuf = cache.join(QUARANTINE).join(folder_name(&repo));
            let snapshots = dir.root().join("snapshots");
            let mut links = Vec::new();
            for link in super::scan::walk(&dir, &snapshots) {
                if dir.linked_etag(&link).as_deref() == Some(etag.as_str()) {
                    let target = fs::read_link(&cache, &link).unwrap_or_default();
                    let rel = link.strip_prefix(dir.root()).unwrap_or(&link).display().to_string();
                    links.push((rel, target.display().to_string()));
                }
            }
            let (to, mut manifest) = claim(&cache, &qdir, &etag)?;
            let record = serde_json::json!({
                "repo": repo, "etag": etag, "algorithm": algorithm, "actual": actual,
                "restore": format!("mv {} {}, then recreate each link", to.display(), dir.blob(&etag).display()),
                "links": links.iter().map(|(l, t)| serde_json::json!({"link": l, "target": t})).collect::<Vec<_>>(),
            });
            let json = to.with_file_name(format!("{}.json", to.file_name().unwrap_or_default().to_string_lossy()));
            std::io::Write::write_all(&mut manifest, &serde_json::to_vec_pretty(&record).unwrap_or_default())
                .and_then(|()| fs::sync_data(&manifest))
                .map_err(at(&json))?;
            fs::rename(&cache, &dir.blob(&etag), &to, false)?;
            for (rel, _) in &links {
                fs::remove(&cache, &dir.root().join(rel), Kind::Link)?;
            }
            Ok(Quarantined { repo, etag, algorithm, actual, moved_to: to.display().to_string(), links })
        })
        .await
}

/// A free quarantine name for `etag` in `qdir`: `<etag>`, else `<etag>.2`, `<etag>.3`…, claimed by
/// creating its record `<name>.json` exclusively (so two verifies never share a name). Returns
/// the blob's destination and the open record.
fn claim(cache: &Path, qdir: &Path, etag: &str) -> Result<(PathBuf, std::fs::File), CacheError> {
    for n in 1u32.. {
        let name = if n == 1 { etag.to_owned() } else { format!("{etag}.{n}") };
        let to = qdir.join(&name);
        if fs::entry(cache, &to)?.is_some() {
            continue;
        }
        match fs::open(cache, &qdir.join(format!("{name}.json")), Open::CreateNew) {
            Ok(Some(file)) => return Ok((to, file)),
            Err(e) if e.source.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
            Ok(None) => unreachable!("CreateNew creates"),
        }
    }
    unreachable!("a free name exists")
}
