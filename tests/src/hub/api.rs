//! The hub's tide routes, answered the way huggingface.co answers them.
//!
//! - `HEAD|GET /{org}/{name}/resolve/{revision}/{path…}`: LFS → `302` to the CDN with
//!   `X-Repo-Commit`, `X-Linked-Etag`, `X-Linked-Size`; non-LFS → `200`/`206` body from here.
//! - `GET /api/models/{org}/{name}[/revision/{revision}]`: `{id, sha, siblings: [{rfilename}]}`.
//! - `GET /api/models/{org}/{name}/tree/{revision}[/{dir}]`: the file listing (see `tree`).
//! - Errors: `404` + `X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`,
//!   gated repos `401` (no token) / `403` (wrong token) + `X-Error-Code: GatedRepo`.
//! - Control (not logged): `GET /_stats`, `POST /_config` (see [`ConfigPatch`]).

use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;
use tide::{Body, Next, Request, Response};

use super::body::{BodyReader, Span};
use super::content::FileData;
use super::faults::Fault;
use super::repos::HfError;
use super::stats::HubRequest;
use super::Shared;

type Req = Request<Arc<Shared>>;

/// Serve the hub on its own thread until `stop` closes.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    listener: TcpListener,
    stop: async_channel::Receiver<()>,
) -> std::io::Result<JoinHandle<()>> {
    let mut app = tide::with_state(shared);
    app.with(log_request);
    app.at("/_stats").get(|req: Req| async move { Body::from_json(&req.state().recorder.snapshot().to_json()) });
    app.at("/_config").post(config);
    app.at("/api/models/*rest").get(model_info);
    app.at("/:org/:name/resolve/*rest").get(resolve);
    std::thread::Builder::new().name("fake-hub".into()).spawn(move || {
        smol::block_on(futures_lite::future::or(async { app.listen(listener).await.map(drop) }, async {
            stop.recv().await.ok();
            Ok(())
        }))
        .ok();
    })
}

fn log_request<'a>(req: Req, next: Next<'a, Arc<Shared>>) -> Pin<Box<dyn Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        let at = Instant::now();
        let shared = req.state().clone();
        let method = req.method().to_string();
        let url = req.url();
        let path = url.query().map_or_else(|| url.path().to_owned(), |q| format!("{}?{q}", url.path()));
        let headers = req.iter().map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.as_str().to_owned())).collect();
        let res = next.run(req).await;
        if !path.starts_with("/_") {
            let status = res.status() as u16;
            shared.recorder.request(HubRequest { method, path, headers, status, at });
        }
        Ok(res)
    })
}

/// An error the way huggingface.co sends it.
fn hf_error(status: u16, code: Option<&str>, message: &str) -> Response {
    let mut res = Response::new(status);
    if let Some(code) = code {
        res.insert_header("X-Error-Code", code);
    }
    res.insert_header("X-Error-Message", message);
    res.set_body(Body::from_json(&json!({ "error": message })).unwrap_or_else(|_| Body::empty()));
    res
}

fn not_found(e: HfError, what: &str) -> Response {
    let message = match e {
        HfError::RepoNotFound => format!("Repository not found: {what}"),
        HfError::RevisionNotFound => format!("Invalid rev id: {what}"),
        HfError::EntryNotFound => format!("Entry not found: {what}"),
    };
    hf_error(404, Some(e.code()), &message)
}

fn percent_decode(s: &str) -> String {
    rbee_protocol::validate::percent_decode(s).unwrap_or_else(|| s.to_owned())
}

/// Check the token of a gated repo: `Err(401|403)` when it does not pass.
fn check_auth(shared: &Shared, req: &Req, repo: &str) -> Result<(), Box<Response>> {
    let auth = req.header("Authorization").map(|v| v.last().as_str().to_owned());
    let token = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
    match (token, &shared.token) {
        (None, _) => Err(Box::new(hf_error(401, Some("GatedRepo"), &format!("Access to model {repo} is restricted.")))),
        (Some(t), Some(want)) if t != want => {
            let message = format!("Access to model {repo} is restricted: wrong token.");
            Err(Box::new(hf_error(403, Some("GatedRepo"), &message)))
        }
        _ => Ok(()),
    }
}

/// Look up `repo@revision/file`, answering errors as huggingface.co does.
fn lookup(req: &Req, repo: &str, revision: &str, file: &str) -> Result<Arc<FileData>, Box<Response>> {
    let shared = req.state();
    let repos = shared.repos();
    let r = repos.repo(repo).map_err(|e| Box::new(not_found(e, repo)))?;
    if r.gated {
        check_auth(shared, req, repo)?;
    }
    r.file(revision, file).map_err(|e| Box::new(not_found(e, &format!("{repo}@{revision}/{file}"))))
}

async fn resolve(req: Req) -> tide::Result {
    let injected = req.state().faults().take_resolve();
    if let Some(status) = injected {
        let mut res = hf_error(status, None, "injected fault");
        let headers = req.state().faults().resolve_headers.clone();
        for (k, v) in &headers {
            res.insert_header(k.as_str(), v.as_str());
        }
        return Ok(res);
    }
    // /{org}/{name}/resolve/{revision}/{path...}
    let path = req.url().path().to_owned();
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let [org, name, _, revision, file] = parts[..] else {
        return Ok(not_found(HfError::EntryNotFound, &path));
    };
    let (repo, revision, file) = (format!("{org}/{name}"), percent_decode(revision), percent_decode(file));
    let file = match lookup(&req, &repo, &revision, &file) {
        Ok(f) => f,
        Err(res) => return Ok(*res),
    };
    let digests = file.clone();
    smol::unblock(move || digests.etag().len()).await;
    let xet = req.state().faults().xet.contains_key(&file.name);
    let mut res = if file.lfs { redirect(req.state(), &file) } else { serve_direct(&req, &file) };
    if xet && file.lfs {
        xet_headers(&mut res, req.state(), &file);
    }
    res.insert_header("X-Repo-Commit", file.commit.as_str());
    let overrides = req.state().faults().resolve_override.get(&file.name).cloned().unwrap_or_default();
    for (k, v) in &overrides {
        if k.eq_ignore_ascii_case("Location") {
            res.set_status(tide::StatusCode::Found);
        }
        res.insert_header(k.as_str(), v.as_str());
    }
    Ok(res)
}

fn redirect(shared: &Shared, file: &FileData) -> Response {
    let sha = file.sha256();
    let mut res = Response::new(302);
    res.insert_header("Location", format!("{}/blobs/{}/{sha}", shared.cdn_url, file.repo));
    res.insert_header("X-Linked-Etag", format!("\"{sha}\""));
    res.insert_header("X-Linked-Size", file.size.to_string());
    res.insert_header("ETag", format!("\"{sha}\""));
    res.set_body(Body::empty());
    res
}

/// A Xet-backed file's resolve answer, as huggingface.co sends it: `X-Xet-Hash` (not the
/// sha256: a client must verify against `X-Linked-Etag`), a `Link` to xet-auth, an `ETag` of the
/// Xet hash, and a `Location` on a bridge host of another origin (`localhost`, not `127.0.0.1`).
fn xet_headers(res: &mut Response, shared: &Shared, file: &FileData) {
    let xet_hash = format!("{:0>64}", file.git_sha1());
    let bridge = shared.cdn_url.replace("127.0.0.1", "localhost");
    res.insert_header("X-Xet-Hash", xet_hash.as_str());
    res.insert_header("ETag", format!("\"{xet_hash}\""));
    res.insert_header("Link", format!("<{bridge}/api/models/{}/xet-read-token/main>; rel=\"xet-auth\"", file.repo));
    res.insert_header("Location", format!("{bridge}/bridge/{}/{}", file.repo, file.sha256()));
}

fn serve_direct(req: &Req, file: &Arc<FileData>) -> Response {
    let get = req.method() == tide::http::Method::Get;
    let fault = if get { req.state().faults().take(&file.name) } else { None };
    if let Some(Fault::Status(code)) = fault {
        return hf_error(code, None, "injected fault");
    }
    let range = req.header("Range").map(|v| v.last().as_str().to_owned()).filter(|_| fault != Some(Fault::IgnoreRange));
    let span = Span::parse(range.as_deref(), file.size);
    let (start, end) = span.bounds(file.size);
    let mut res = Response::new(match span {
        Span::Full => 200,
        Span::Part(..) => 206,
        Span::Unsatisfiable => 416,
    });
    match span {
        Span::Part(..) => res.insert_header("Content-Range", format!("bytes {start}-{}/{}", end - 1, file.size)),
        Span::Unsatisfiable => res.insert_header("Content-Range", format!("bytes */{}", file.size)),
        Span::Full => {}
    }
    res.insert_header("ETag", format!("\"{}\"", file.git_sha1()));
    res.insert_header("Accept-Ranges", "bytes");
    let len = usize::try_from(if span == Span::Unsatisfiable { 0 } else { end - start }).unwrap_or(usize::MAX);
    let reader = BodyReader::new(req.state().clone(), file.clone(), if get { (start, end) } else { (0, 0) }, fault);
    res.set_body(Body::from_reader(futures_lite::io::BufReader::with_capacity(64 << 10, reader), Some(len)));
    res.set_content_type(if file.name.ends_with(".json") { "application/json" } else { "text/plain" });
    res
}

async fn model_info(req: Req) -> tide::Result {
    let path = req.url().path().trim_start_matches("/api/models/").to_owned();
    if let Some((repo, rest)) = path.split_once("/tree/") {
        return model_tree(&req, repo, rest).await;
    }
    let (repo, revision) = match path.split_once("/revision/") {
        Some((repo, rev)) => (repo.to_owned(), Some(percent_decode(rev))),
        None => (path.trim_end_matches('/').to_owned(), None),
    };
    let found = {
        let shared = req.state();
        let repos = shared.repos();
        match repos.repo(&repo) {
            Err(e) => Err(not_found(e, &repo)),
            Ok(r) => match (r.gated.then(|| check_auth(shared, &req, &repo)).transpose(), &revision) {
                (Err(res), _) => Err(*res),
                (Ok(_), rev) => {
                    let revision = rev.clone().unwrap_or_else(|| r.default_revision().to_owned());
                    match r.at(&revision) {
                        Ok((commit, files)) => Ok((commit.to_owned(), files.to_vec(), r.gated)),
                        Err(e) => Err(not_found(e, &format!("{repo}@{revision}"))),
                    }
                }
            },
        }
    };
    let (commit, files, gated) = match found {
        Ok(f) => f,
        Err(res) => return Ok(res),
    };
    let blobs = req.url().query_pairs().any(|(k, v)| k == "blobs" && v == "true");
    let siblings: Vec<_> = if blobs {
        // `?blobs=true`: size, blobId and the LFS part, as huggingface.co lists them.
        smol::unblock(move || files.iter().map(|f| sibling_with_blob(f)).collect()).await
    } else {
        files.iter().map(|f| json!({ "rfilename": f.name })).collect()
    };
    let body =
        json!({ "id": repo, "modelId": repo, "sha": commit, "gated": gated, "private": false, "siblings": siblings });
    Ok(Body::from_json(&body)?.into())
}

fn sibling_with_blob(f: &FileData) -> serde_json::Value {
    let mut s = json!({ "rfilename": f.name, "size": f.size, "blobId": f.git_sha1() });
    if f.lfs {
        s["lfs"] = json!({ "sha256": f.sha256(), "size": f.size, "pointerSize": 134 });
    }
    s
}

/// `GET /api/models/{repo}/tree/{revision}[/{dir}]`: see [`super::tree`].
async fn model_tree(req: &Req, repo: &str, rest: &str) -> tide::Result {
    let (revision, dir) = rest.split_once('/').unwrap_or((rest, ""));
    let (revision, dir) = (percent_decode(revision), percent_decode(dir));
    let recursive = req.url().query_pairs().any(|(k, v)| k == "recursive" && v == "true");
    let files = {
        let shared = req.state();
        let repos = shared.repos();
        let r = match repos.repo(repo) {
            Ok(r) => r,
            Err(e) => return Ok(not_found(e, repo)),
        };
        if r.gated {
            if let Err(res) = check_auth(shared, req, repo) {
                return Ok(*res);
            }
        }
        match r.at(&revision) {
            Ok((_, files)) => files.to_vec(),
            Err(e) => return Ok(not_found(e, &format!("{repo}@{revision}"))),
        }
    };
    let body = smol::unblock(move || super::tree::listing(&files, &dir, recursive)).await;
    Ok(Body::from_json(&body)?.into())
}

/// `POST /_config`: change rates and faults of a running hub process.
/// `{"rate": 1048576, "link_rate": 4194304, "faults": [{"file": "model.gguf", "fault": {"kind": "reset_after", "n": 4096},
/// "times": 1}], "resolve_fault": {"status": 503, "times": 2}, "clear_faults": true}`; every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigPatch {
    rate: Option<u64>,
    link_rate: Option<u64>,
    #[serde(default)]
    clear_faults: bool,
    #[serde(default)]
    faults: Vec<FileFault>,
    resolve_fault: Option<ResolveFault>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFault {
    file: String,
    fault: Fault,
    #[serde(default = "one")]
    times: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveFault {
    status: u16,
    #[serde(default = "one")]
    times: usize,
}

fn one() -> usize {
    1
}

async fn config(mut req: Req) -> tide::Result {
    let patch: ConfigPatch = match req.body_json().await {
        Ok(p) => p,
        Err(e) => return Ok(hf_error(400, None, &e.to_string())),
    };
    let shared = req.state();
    if let Some(rate) = patch.rate {
        shared.rate.store(rate, Ordering::Relaxed);
    }
    if let Some(rate) = patch.link_rate {
        shared.link_rate.store(rate, Ordering::Relaxed);
    }
    let mut faults = shared.faults();
    if patch.clear_faults {
        faults.clear();
    }
    for f in &patch.faults {
        faults.push(&f.file, f.fault, f.times);
    }
    if let Some(r) = patch.resolve_fault {
        faults.push_resolve(r.status, r.times);
    }
    Ok(Body::from_json(&json!({ "rate": shared.rate.load(Ordering::Relaxed) }))?.into())
}
