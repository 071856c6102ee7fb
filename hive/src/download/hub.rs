//! The hub conversation: what a file is (`HEAD {endpoint}/{repo}/resolve/{revision}/{file}`
//! without following the redirect to the CDN), what a revision holds
//! (`GET /api/models/{repo}/revision/{revision}`), where HF_TOKEN may go (the endpoint's origin
//! only, never a CDN on another host), and what a refusal means (status → [`DownloadError`]).
//! The transfer asks this module for every request it sends, so the token rule lives here alone.

use surf::{StatusCode, Url};

use super::curl::Session;
use super::error::{network, DownloadError};
use super::retry::{with_timeout, HEAD_TIMEOUT};
use super::select::{Listing, Sibling};
use super::upstream;

/// The hub: its HTTP client, endpoint and token.
pub(crate) struct Hub {
    client: surf::Client,
    endpoint: Url,
    token: Option<String>,
    /// `--allow-unverified`: accept a file whose ETag is no digest (see `upstream.rs`).
    allow_unverified: bool,
}

/// What the hub said about one file.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `X-Repo-Commit`.
    pub commit: String,
    /// `X-Linked-Etag` (LFS sha256) or `ETag`, unquoted.
    pub etag: String,
    /// `X-Linked-Size` or `Content-Length`.
    pub size: Option<u64>,
    /// Where to GET the bytes (the CDN `Location`, or the resolve URL itself).
    pub url: Url,
    /// `X-Xet-Hash`, when the file is stored in Xet (never used to verify: see `xet.rs`).
    pub xet_hash: Option<String>,
}

/// What a file's ETag lets us check its content against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest<'a> {
    /// An LFS file: its ETag is the sha256 of its content.
    Sha256(&'a str),
    /// A file stored in git itself: its ETag is git's blob id, `sha1("blob <len>\0" + content)`.
    GitSha1(&'a str),
    /// Neither: only the size can be checked, and the job says so.
    Unverifiable,
}

impl Resolved {
    /// The digest the ETag promises.
    #[must_use]
    pub fn digest(&self) -> Digest<'_> {
        let e = self.etag.as_str();
        let hex = e.bytes().all(|b| b.is_ascii_hexdigit());
        match e.len() {
            64 if hex => Digest::Sha256(e),
            40 if hex => Digest::GitSha1(e),
            _ => Digest::Unverifiable,
        }
    }
}

/// Git's blob id of the file at `path`: `sha1("blob <len>\0" + content)`.
///
/// # Errors
/// When the file cannot be read.
pub fn git_blob_sha1(path: &std::path::Path) -> std::io::Result<String> {
    use sha1::Digest as _;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("blob {len}\0").as_bytes());
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

impl Hub {
    /// A hub with its own HTTP client (no redirects followed, no overall timeout).
    pub(crate) fn new(
        endpoint: Url,
        token: Option<String>,
        proxy: Option<super::curl::Proxy>,
        allow_unverified: bool,
    ) -> anyhow::Result<Self> {
        let client = surf::Client::with_http_client(super::curl::CurlClient::new(proxy)?);
        Ok(Self { client, endpoint, token, allow_unverified })
    }

    /// The hub (`HF_ENDPOINT`).
    pub(crate) fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Whether requests to the hub carry an `HF_TOKEN`.
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// A GET of `url`, carrying HF_TOKEN only when `url` is on the endpoint's origin.
    pub(crate) fn get(&self, url: &Url) -> surf::RequestBuilder {
        if same_origin(url, &self.endpoint) {
            self.request(surf::http::Method::Get, url)
        } else {
            surf::RequestBuilder::new(surf::http::Method::Get, url.clone())
        }
    }

    /// A request to the hub, with HF_TOKEN when set.
    fn request(&self, method: surf::http::Method, url: &Url) -> surf::RequestBuilder {
        let req = surf::RequestBuilder::new(method, url.clone());
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    /// `{endpoint}/{repo}/resolve/{revision}/{file}`, each part percent-encoded.
    pub(crate) fn resolve_url(&self, repo: &str, revision: &str, file: &str) -> Url {
        let mut url = self.endpoint.clone();
        {
            let mut segs = url.path_segments_mut().expect("endpoint is a base URL");
            segs.pop_if_empty();
            segs.extend(repo.split('/')).push("resolve").push(revision).extend(file.split('/'));
        }
        url
    }

    /// HEADs the resolve URL (following only same-host relative redirects, as huggingface_hub).
    pub(crate) async fn resolve(&self, repo: &str, revision: &str, file: &str) -> Result<Resolved, DownloadError> {
        let mut url = self.resolve_url(repo, revision, file);
        for _ in 0..5 {
            let req = self.request(surf::http::Method::Head, &url).header("Accept-Encoding", "identity").build();
            let res = with_timeout(self.client.send(req), HEAD_TIMEOUT)
                .await
                .map_err(|reason| network(format!("resolving `{file}`"), reason))?;
            let status = res.status();
            if status.is_redirection() {
                let location = header(&res, "Location")
                    .ok_or_else(|| protocol(file, format!("HTTP {status} without Location")))?;
                let next = url.join(&location).map_err(|e| protocol(file, e))?;
                upstream::redirect(&next, &self.endpoint).await.map_err(|reason| protocol(file, reason))?;
                if same_origin(&next, &self.endpoint) && header(&res, "X-Repo-Commit").is_none() {
                    url = next;
                    continue;
                }
                return parse(&res, next, file, self.allow_unverified);
            }
            if status.is_success() {
                return parse(&res, url, file, self.allow_unverified);
            }
            return Err(self.status_error(&res, repo, revision, file));
        }
        Err(protocol(file, "too many redirects"))
    }

    /// Maps a failed hub answer to the error users understand.
    pub(crate) fn status_error(&self, res: &surf::Response, repo: &str, revision: &str, file: &str) -> DownloadError {
        let status = res.status();
        let code = header(res, "X-Error-Code").unwrap_or_default();
        let repo_s = repo.to_owned();
        match (status, code.as_str()) {
            (StatusCode::Unauthorized | StatusCode::Forbidden, _) | (_, "GatedRepo") => {
                let hint = match (&self.token, status) {
                    (None, _) => ": set the HF_TOKEN environment variable to a token that has access",
                    (Some(_), StatusCode::Forbidden) => {
                        ": HF_TOKEN was refused for this repo; request access or use another token"
                    }
                    (Some(_), _) => ": HF_TOKEN was not accepted; check that it is valid",
                };
                DownloadError::Unauthorized { repo: repo_s, status: status.into(), hint }
            }
            (StatusCode::NotFound, "RevisionNotFound") => {
                DownloadError::RevisionNotFound { repo: repo_s, revision: revision.to_owned() }
            }
            (StatusCode::NotFound, "EntryNotFound") => {
                DownloadError::EntryNotFound { repo: repo_s, revision: revision.to_owned(), file: file.to_owned() }
            }
            (StatusCode::NotFound, _) => DownloadError::RepoNotFound(repo_s),
            // issue 13: wait as the hub says (ratelimit.rs)
            (StatusCode::TooManyRequests, _) => super::ratelimit::error(res, format!("`{file}`")),
            _ => DownloadError::Status { status: status.into(), what: format!("`{file}`"), retried: String::new() },
        }
    }

    /// A revision's commit and files with their sizes and blob ids:
    /// `GET /api/models/{repo}/revision/{revision}?blobs=true`.
    pub(crate) async fn listing(&self, repo: &str, revision: &str) -> Result<Listing, DownloadError> {
        #[derive(serde::Deserialize)]
        struct Info {
            sha: String,
            siblings: Vec<Sibling>,
        }
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .expect("endpoint is a base URL")
            .pop_if_empty()
            .extend(["api", "models"])
            .extend(repo.split('/'))
            .extend(["revision", revision]);
        url.set_query(Some("blobs=true"));
        let what = format!("listing `{repo}`");
        let mut res = with_timeout(self.client.send(self.request(surf::http::Method::Get, &url).build()), HEAD_TIMEOUT)
            .await
            .map_err(|r| network(&what, r))?;
        if !res.status().is_success() {
            return Err(self.status_error(&res, repo, revision, "(repo listing)"));
        }
        let info: Info = res.body_json().await.map_err(|e| protocol(&what, e))?;
        upstream::commit(&info.sha).map_err(|reason| protocol(&what, reason.replace("X-Repo-Commit", "sha")))?;
        Ok(Listing { commit: info.sha, files: info.siblings })
    }

    /// GETs `url` from `offset`, following a bounded redirect chain ([`super::xet`]: Xet
    /// bridges), the token only to hops on the endpoint's origin; over `session`'s connections
    /// when given.
    pub(crate) async fn get_following(
        &self,
        url: &Url,
        (offset, range_end): (u64, Option<u64>),
        stall: std::time::Duration,
        what: &str,
        session: Option<&Session>,
    ) -> Result<surf::Response, DownloadError> {
        let mut url = url.clone();
        for _ in 0..=super::wire::MAX_REDIRECTS {
            let mut req = self.get(&url);
            match range_end {
                Some(end) => req = req.header("Range", format!("bytes={offset}-{end}")),
                None if offset > 0 => req = req.header("Range", format!("bytes={offset}-")),
                None => {}
            }
            let mut req = req.build();
            if let Some(session) = session {
                req.set_ext(session.clone());
            }
            let response = with_timeout(self.client.send(req), stall).await.map_err(|r| network(what, r))?;
            match header(&response, "Location") {
                Some(location) if response.status().is_redirection() => {
                    url = url.join(&location).map_err(|e| network(what, format!("bad redirect `{location}`: {e}")))?;
                    upstream::redirect(&url, &self.endpoint).await.map_err(|reason| protocol(what, reason))?;
                }
                _ => return Ok(response),
            }
        }
        let reason = format!("more than {} redirects", super::wire::MAX_REDIRECTS);
        Err(DownloadError::Protocol { what: what.to_owned(), reason })
    }
}

fn parse(res: &surf::Response, url: Url, file: &str, allow_unverified: bool) -> Result<Resolved, DownloadError> {
    let commit = header(res, "X-Repo-Commit").ok_or_else(|| protocol(file, "no X-Repo-Commit header"))?;
    upstream::commit(&commit).map_err(|reason| protocol(file, reason))?;
    let etag = header(res, "X-Linked-Etag")
        .or_else(|| header(res, "ETag"))
        .map(|e| e.trim_start_matches("W/").trim_matches('"').to_owned())
        .ok_or_else(|| protocol(file, "no ETag header"))?;
    upstream::etag(&etag, allow_unverified).map_err(|reason| protocol(file, reason))?;
    let size = header(res, "X-Linked-Size").or_else(|| header(res, "Content-Length")).and_then(|s| s.parse().ok());
    let xet_hash = header(res, "X-Xet-Hash");
    Ok(Resolved { commit, etag, size, url, xet_hash })
}

pub(crate) use super::wire::header;

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

pub(crate) fn protocol(what: &str, reason: impl std::fmt::Display) -> DownloadError {
    DownloadError::Protocol { what: what.to_owned(), reason: reason.to_string() }
}
