//! `/hf/…`: the cache as a HuggingFace endpoint (see [`crate::mirror`]), answered with the
//! headers huggingface.co sends so that huggingface_hub, hf-hub and rbee use it as `HF_ENDPOINT`:
//!
//! - `HEAD|GET /hf/{repo}/resolve/{revision}/{file}` → `200` (no redirect: the bytes come from
//!   here) with `X-Repo-Commit`, `ETag` and `X-Linked-Etag` (the blob's etag, quoted),
//!   `X-Linked-Size`, `Content-Length`, `Accept-Ranges: bytes`; `206` + `Content-Range` for a
//!   single `Range`, `416` + `Content-Range: bytes */size` when it lies outside the file, `304`
//!   for a matching `If-None-Match`. Commit URLs are `Cache-Control: immutable`, branch and tag
//!   URLs `no-cache` (an HTTP cache in front revalidates them by ETag).
//! - `GET /hf/api/models/{repo}[/revision/{revision}]` → `{id, sha, siblings: [{rfilename}]}`.
//! - `GET /hf/api/models/{repo}/tree/{revision}[/{path}]` → the hub's tree listing, paged
//!   ([`crate::mirror::tree`]).
//! - What the cache lacks: `404` + `X-Error-Code: RepoNotFound | RevisionNotFound |
//!   EntryNotFound`, or with pull-through, a job fetching it while the response streams it.
//!
//! The token and browser checks of every route apply here too.

use std::sync::Arc;

use rbee_protocol::{routes, validate, ErrorCode};
use serde_json::json;
use tide::{Body, Request, Response, StatusCode};

use super::sendfile::FileRange;
use super::{error, header, json, State};
use crate::cache::RepoDir;
use crate::mirror::tree::{self, TreeAsk, TreeFile};
use crate::mirror::{self, BlobBody, Growing, Located, MirrorError};

/// What a mirror path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// `{repo}/resolve/{revision}/{file}`.
    Resolve { repo: String, revision: String, file: String },
    /// `api/models/{repo}[/revision/{revision}]`.
    Info { repo: String, revision: String },
    /// `api/models/{repo}/tree/{revision}[/{path}]`.
    Tree { repo: String, revision: String, path: String },
}

/// A path segment, percent-decoded (`refs%2Fpr%2F1` → `refs/pr/1`); names are validated later.
fn decode(segment: &str) -> Option<String> {
    rbee_protocol::validate::percent_decode(segment)
}

/// Parses the path after `/hf/`; `None` for anything else. A repo id is `org/name` or `name`.
fn parse(path: &str) -> Option<Ask> {
    let segs: Vec<&str> = path.split('/').collect();
    if let ["api", "models", rest @ ..] = segs.as_slice() {
        // `{org}/{name}/tree/…` before `{name}/tree/…`: the path after the revision is one
        // percent-encoded segment, as huggingface_hub sends it.
        // A repo named `tree` asked for its info (`{org}/tree/revision/{rev}`) stays an info.
        let info = matches!(rest, [_, "revision", _] | [_, _, "revision", _]);
        let tree = [2, 1].into_iter().find(|i| !info && rest.get(*i) == Some(&"tree") && rest.len() > i + 1);
        if let Some(at) = tree {
            let path = rest.get(at + 2..).map_or_else(String::new, |p| p.join("/"));
            let (repo, revision) = (decode(&rest[..at].join("/"))?, decode(rest[at + 1])?);
            return Some(Ask::Tree { repo, revision, path: decode(&path)? });
        }
        let (repo, revision) = match rest {
            [name] => (vec![*name], None),
            [org, name] if *name != "revision" => (vec![*org, *name], None),
            [name, "revision", rev] => (vec![*name], Some(*rev)),
            [org, name, "revision", rev] => (vec![*org, *name], Some(*rev)),
            _ => return None,
        };
        let revision = revision.map_or_else(|| Some("main".to_owned()), decode)?;
        return Some(Ask::Info { repo: decode(&repo.join("/"))?, revision });
    }
    let at = segs.iter().take(3).position(|s| *s == "resolve").filter(|i| (1..=2).contains(i))?;
    let (repo, rest) = segs.split_at(at);
    let [_, revision, file @ ..] = rest else { return None };
    if file.is_empty() {
        return None;
    }
    Some(Ask::Resolve { repo: decode(&repo.join("/"))?, revision: decode(revision)?, file: decode(&file.join("/"))? })
}

/// `GET|HEAD /hf/*`.
pub(super) async fn endpoint(req: Request<State>) -> tide::Result {
    let path = req.url().path().strip_prefix(routes::MIRROR).unwrap_or_default().trim_start_matches('/').to_owned();
    match parse(&path) {
        Some(Ask::Resolve { repo, revision, file }) => resolve(&req, repo, revision, file).await,
        Some(Ask::Info { repo, revision }) => info(&req, repo, revision).await,
        Some(Ask::Tree { repo, revision, path }) => tree(&req, TreeAsk::new(&req, repo, revision, path)).await,
        None => error(
            ErrorCode::NotFound,
            format!(
                "no mirror route for `{}`: the mirror answers {m}/{{repo}}/resolve/{{revision}}/{{file}} and \
                 {m}/api/models/{{repo}}[/revision/{{revision}}]",
                path.escape_debug(),
                m = routes::MIRROR
            ),
        ),
    }
}

/// A mirror error, with the hub's `X-Error-Code` / `X-Error-Message` where it has one.
fn mirror_error(e: &MirrorError) -> tide::Result {
    let message = e.to_string();
    let mut res = error(e.code(), &message)?;
    if let Some(code) = e.hub_code() {
        header::set(&mut res, "X-Error-Code", code);
        header::set(&mut res, "X-Error-Message", &rbee_protocol::text::one_line(&message));
    }
    Ok(res)
}

async fn resolve(req: &Request<State>, repo: String, revision: String, file: String) -> tide::Result {
    let hive = req.state().clone();
    let cache = hive.downloader.cache().to_owned();
    let (r, v, f) = (repo.clone(), revision.clone(), file.clone());
    match smol::unblock(move || mirror::locate(&cache, &r, &v, &f)).await {
        Ok(found) => Ok(respond(req, &revision, &found, None)),
        Err(e) if e.is_miss() && hive.pull.enabled() => pull_through(req, &hive, &repo, &revision, &file).await,
        Err(e) => mirror_error(&e),
    }
}

/// A miss with `--mirror-upstream`: asks upstream what the file is (so the answer carries its
/// commit, etag and size at once), starts or joins the job that downloads it, and serves the
/// bytes as the job writes them (a `HEAD` only starts the job).
async fn pull_through(req: &Request<State>, hive: &State, repo: &str, revision: &str, file: &str) -> tide::Result {
    let resolved = match hive.downloader.resolve(repo, revision, file).await {
        Ok(r) => r,
        Err(e) => return mirror_error(&MirrorError::from(e)),
    };
    let job = hive.pull(repo, revision, file);
    let dir = RepoDir::new(hive.downloader.cache(), repo);
    let Some(size) = resolved.size else {
        // No size upstream: nothing to promise in `Content-Length` until the job has the file.
        drop(job.next_after(u64::MAX).await);
        let cache = hive.downloader.cache().to_owned();
        let (r, v, f) = (repo.to_owned(), revision.to_owned(), file.to_owned());
        return match smol::unblock(move || mirror::locate(&cache, &r, &v, &f)).await {
            Ok(found) => Ok(respond(req, revision, &found, None)),
            Err(e) => mirror_error(&e),
        };
    };
    let found = Located { commit: resolved.commit, blob: dir.blob(&resolved.etag), size, etag: resolved.etag.clone() };
    let growing = Growing { incomplete: dir.incomplete(&resolved.etag), job: Arc::clone(&job) };
    Ok(respond(req, revision, &found, Some(growing)))
}

/// Which bytes a `Range` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// No (usable) `Range`: the whole file.
    Full,
    /// `start..end`.
    Part(u64, u64),
    /// A range outside the file.
    Unsatisfiable,
}

/// One `bytes=` range (`a-b`, `a-`, `-n`); anything else, several ranges included, is ignored as
/// RFC 9110 allows (the whole file is sent).
fn span(range: Option<&str>, size: u64) -> Span {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else { return Span::Full };
    let Some((a, b)) = spec.trim().split_once('-') else { return Span::Full };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), num(a), num(b)) {
        (true, _, Some(0)) => Span::Unsatisfiable,
        (true, _, Some(n)) if size > 0 => Span::Part(size.saturating_sub(n), size),
        (true, _, Some(_)) => Span::Unsatisfiable,
        (false, Some(start), _) if start >= size && (b.trim().is_empty() || num(b).is_some_and(|e| e >= start)) => {
            Span::Unsatisfiable
        }
        (false, Some(start), None) if b.trim().is_empty() => Span::Part(start, size),
        (false, Some(start), Some(last)) if last >= start => Span::Part(start, last.saturating_add(1).min(size)),
        _ => Span::Full,
    }
}

/// Whether `If-None-Match` names this etag (or `*`).
fn not_modified(req: &Request<State>, etag: &str) -> bool {
    let quoted = format!("\"{etag}\"");
    req.header("If-None-Match").is_some_and(|v| {
        v.iter()
            .flat_map(|h| h.as_str().split(','))
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == quoted)
    })
}

/// The response for a located file: headers as the hub sends them, and the bytes (or the part
/// of them a `Range` asks for) streamed from disk — for a published blob, with `sendfile` by the
/// accept loop (see `sendfile.rs`).
fn respond(req: &Request<State>, revision: &str, found: &Located, growing: Option<Growing>) -> Response {
    let size = found.size;
    let head = |res: &mut Response| {
        header::set(res, "X-Repo-Commit", &found.commit);
        header::set(res, "ETag", &format!("\"{}\"", found.etag));
        header::set(res, "X-Linked-Etag", &format!("\"{}\"", found.etag));
        res.insert_header("X-Linked-Size", size.to_string());
        res.insert_header("Accept-Ranges", "bytes");
        let immutable = validate::is_commit(revision);
        res.insert_header("Cache-Control", if immutable { "public, max-age=31536000, immutable" } else { "no-cache" });
    };
    if not_modified(req, &found.etag) {
        let mut res = Response::new(StatusCode::NotModified);
        head(&mut res);
        return res;
    }
    let range = req.header("Range").map(|v| v.last().as_str().to_owned());
    let (status, start, end) = match span(range.as_deref(), size) {
        Span::Full => (StatusCode::Ok, 0, size),
        Span::Part(start, end) => (StatusCode::PartialContent, start, end),
        Span::Unsatisfiable => {
            let message = format!("`{}` is {size} bytes: the range asks for none of them", range.unwrap_or_default());
            let mut res = error(ErrorCode::RangeNotSatisfiable, message).unwrap_or_else(|e| e.into());
            head(&mut res);
            res.insert_header("Content-Range", format!("bytes */{size}"));
            return res;
        }
    };
    let mut res = Response::new(status);
    head(&mut res);
    if status == StatusCode::PartialContent {
        res.insert_header("Content-Range", format!("bytes {start}-{}/{size}", end.saturating_sub(1)));
    }
    let len = usize::try_from(end - start).unwrap_or(usize::MAX);
    // A HEAD gets the same head, and no file is opened for it.
    let body = if req.method() == tide::http::Method::Head {
        Body::from_reader(futures_lite::io::empty(), Some(len))
    } else {
        if growing.is_none() {
            // A published blob: the accept loop sends these bytes with sendfile (sendfile.rs).
            res.insert_ext(FileRange { path: found.blob.clone(), start, end });
        }
        Body::from_reader(BlobBody::new(found.blob.clone(), growing, size, start, end), Some(len))
    };
    res.set_body(body);
    res.set_content_type("application/octet-stream");
    res
}

/// `GET /hf/api/models/{repo}[/revision/{revision}]`: from upstream with pull-through (the whole
/// file list of the revision), else from the cache (the files it holds); with `blobs=true` each
/// sibling has its size, git blob id and LFS sha256, as the hub's.
async fn info(req: &Request<State>, repo: String, revision: String) -> tide::Result {
    let blobs = req.url().query_pairs().any(|(k, v)| k == "blobs" && matches!(v.as_ref(), "true" | "1" | "True"));
    match revision_files(req.state(), &repo, &revision).await {
        Ok((sha, files)) => {
            let siblings: Vec<_> =
                files.iter().map(|f| if blobs { f.sibling() } else { json!({ "rfilename": f.path }) }).collect();
            let body = json!({
                "id": repo, "modelId": repo, "sha": sha, "private": false, "gated": false, "disabled": false,
                "siblings": siblings,
            });
            json(StatusCode::Ok, &body)
        }
        Err(e) => mirror_error(&e),
    }
}

/// A revision's commit and files: from upstream with pull-through, else from the cache.
async fn revision_files(hive: &State, repo: &str, revision: &str) -> Result<(String, Vec<TreeFile>), MirrorError> {
    if hive.pull.enabled() {
        validate::repo_id(repo)?;
        validate::revision(revision)?;
        return hive.downloader.list_tree(repo, revision).await.map_err(MirrorError::from);
    }
    let cache = hive.downloader.cache().to_owned();
    let (r, v) = (repo.to_owned(), revision.to_owned());
    smol::unblock(move || tree::cached(&cache, &r, &v)).await
}

impl TreeAsk {
    /// The ask of a tree URL, with `recursive`, `expand` and `cursor` from its query.
    fn new(req: &Request<State>, repo: String, revision: String, path: String) -> Self {
        let query: Vec<(String, String)> = req.url().query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let yes = |name: &str| get(name).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1"));
        let cursor = get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
        Self { repo, revision, path, recursive: yes("recursive"), expand: yes("expand"), cursor }
    }
}

/// `GET /hf/api/models/{repo}/tree/{revision}[/{path}]`: from upstream with pull-through (the
/// whole revision), else from the cache (the files it holds); one page, and a `Link` to the next.
async fn tree(req: &Request<State>, ask: TreeAsk) -> tide::Result {
    let listed = revision_files(req.state(), &ask.repo, &ask.revision).await;
    let page = listed.and_then(|(_, files)| tree::page(&ask, &files));
    let (entries, next) = match page {
        Ok(page) => page,
        Err(e) => return mirror_error(&e),
    };
    let mut res = json(StatusCode::Ok, &entries)?;
    if let Some(cursor) = next {
        let mut url = req.url().clone();
        let kept: Vec<(String, String)> =
            url.query_pairs().filter(|(k, _)| k != "cursor").map(|(k, v)| (k.into(), v.into())).collect();
        url.query_pairs_mut().clear().extend_pairs(kept).append_pair("cursor", &cursor.to_string());
        res.insert_header("Link", format!("<{url}>; rel=\"next\""));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(repo: &str, revision: &str, file: &str) -> Option<Ask> {
        Some(Ask::Resolve { repo: repo.into(), revision: revision.into(), file: file.into() })
    }

    #[test]
    fn parses_paths() {
        assert_eq!(parse("org/name/resolve/main/a/b.gguf"), resolve("org/name", "main", "a/b.gguf"));
        assert_eq!(parse("gpt2/resolve/refs%2Fpr%2F1/config.json"), resolve("gpt2", "refs/pr/1", "config.json"));
        assert_eq!(parse("o/n/resolve/main/m%20Q4.gguf"), resolve("o/n", "main", "m Q4.gguf"));
        assert_eq!(parse("o/n/resolve/main"), None);
        assert_eq!(parse("o/n/resolve/main/"), resolve("o/n", "main", "")); // refused by validation
        assert_eq!(parse("a/b/c/resolve/main/f"), None);
        let info = |repo: &str, revision: &str| Some(Ask::Info { repo: repo.into(), revision: revision.into() });
        assert_eq!(parse("api/models/org/name"), info("org/name", "main"));
        assert_eq!(parse("api/models/gpt2"), info("gpt2", "main"));
        assert_eq!(parse("api/models/org/name/revision/v1.0"), info("org/name", "v1.0"));
        assert_eq!(parse("api/models/gpt2/revision/refs%2Fpr%2F1"), info("gpt2", "refs/pr/1"));
        let tree = |repo: &str, revision: &str, path: &str| {
            Some(Ask::Tree { repo: repo.into(), revision: revision.into(), path: path.into() })
        };
        assert_eq!(parse("api/models/org/name/tree/main"), tree("org/name", "main", ""));
        assert_eq!(parse("api/models/gpt2/tree/refs%2Fpr%2F1/sub%2Fdir"), tree("gpt2", "refs/pr/1", "sub/dir"));
        assert_eq!(parse("api/models/org/tree/tree/main"), tree("org/tree", "main", ""));
        assert_eq!(parse("api/models/org/name/tree"), None);
        assert_eq!(parse("api/models/org/tree/revision/main"), info("org/tree", "main"));
    }

    #[test]
    fn ranges() {
        assert_eq!(span(None, 10), Span::Full);
        assert_eq!(span(Some("bytes=0-"), 10), Span::Part(0, 10));
        assert_eq!(span(Some("bytes=3-5"), 10), Span::Part(3, 6));
        assert_eq!(span(Some("bytes=3-99"), 10), Span::Part(3, 10));
        assert_eq!(span(Some("bytes=-4"), 10), Span::Part(6, 10));
        assert_eq!(span(Some("bytes=-40"), 10), Span::Part(0, 10));
        assert_eq!(span(Some("bytes=10-"), 10), Span::Unsatisfiable);
        assert_eq!(span(Some("bytes=12-20"), 10), Span::Unsatisfiable);
        assert_eq!(span(Some("bytes=-0"), 10), Span::Unsatisfiable);
        assert_eq!(span(Some("bytes=0-"), 0), Span::Unsatisfiable);
        for ignored in ["bytes=5-3", "bytes=0-1,4-5", "items=0-1", "bytes=x-", "bytes=-"] {
            assert_eq!(span(Some(ignored), 10), Span::Full, "{ignored}");
        }
    }
}
