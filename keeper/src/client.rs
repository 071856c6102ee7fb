//! The hive's HTTP API over surf (curl client): one method per route, errors with context.
//!
//! Every request has a deadline: connecting and the answer's first byte within [`FIRST_BYTE`]
//! (the error says which of the two did not happen), and no body read silent for longer than
//! [`SILENCE`]. A job's stream lasts as long as its download: only its silence is limited
//! (`follow.rs`).
//! A reply that is not the hive's (no JSON error, not `ok`) becomes [`NotAHive`], never a dump.

mod failure;
mod urls;

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use futures_lite::future;
pub(crate) use rbee_protocol::Health;
use rbee_protocol::{routes, ApiError, JobCreated, JobInfo, JobStatus, Operation, HEALTH_OK};
use serde::de::DeserializeOwned;
use surf::http::Method;
use surf::{RequestBuilder, Response};

pub(crate) use failure::{Cause, NotAHive, Unreachable, CONNECT_TIMEOUT, FIRST_BYTE, SILENCE};
pub(crate) use urls::{addr_of, hive_target, job_stream, normalize_base, HiveTarget, DEFAULT_ADDR};

use crate::error::UsageError;
pub(crate) use crate::error::{status_of, HiveError, NoSuchJob};

/// What `DELETE /v1/jobs/{id}` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CancelReply {
    Cancelled,
    NotFound,
    AlreadyEnded(Option<JobStatus>),
}

/// `work`'s output, or `None` once `limit` passed first: the keeper's one timeout race.
pub(crate) async fn deadline<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    let late = async {
        smol::Timer::after(limit).await;
        None
    };
    future::or(async { Some(work.await) }, late).await
}

/// Run `work`, giving up after `limit` with "no answer within …".
pub(crate) async fn timeout<T>(limit: Duration, work: impl Future<Output = Result<T>>) -> Result<T> {
    deadline(limit, work).await.unwrap_or_else(|| Err(anyhow!("no answer within {limit:?}")))
}

/// A hive at one base URL, with an optional bearer token.
#[derive(Clone)]
pub(crate) struct HiveClient {
    base: String,
    token: Option<String>,
    http: surf::Client,
    /// The local hive (`--local-addr`): its misconfigurations are fixed with RBEE_HIVE_ADDR.
    local: bool,
}

impl HiveClient {
    pub(crate) fn new(base: &str, token: Option<String>) -> Result<Self> {
        Self::build(base, token, None)
    }

    /// The hive at `base` on the far side of `socket`, the local end of an SSH tunnel: requests
    /// name `base` (the hive checks `Host`), bytes go through the socket.
    pub(crate) fn through(base: &str, socket: &std::path::Path) -> Result<Self> {
        Self::build(base, None, Some(socket))
    }

    fn build(base: &str, token: Option<String>, socket: Option<&std::path::Path>) -> Result<Self> {
        let base = normalize_base(base).map_err(|e| UsageError(format!("{e:#}")))?;
        surf::Url::parse(&base).map_err(|e| UsageError(format!("invalid hive URL `{base}`: {e}")))?;
        // surf's own config can only set an overall timeout, which would cut a long stream; curl's
        // connect timeout (which covers the TLS handshake) comes from isahc's builder.
        use isahc::config::Configurable;
        let mut curl = isahc::HttpClient::builder().connect_timeout(CONNECT_TIMEOUT).tcp_nodelay();
        if let Some(socket) = socket {
            curl = curl.dial(isahc::config::Dialer::unix_socket(socket));
        }
        let curl = curl.build();
        let curl = curl.map_err(|e| anyhow!("creating the HTTP client: {e}"))?;
        let http = surf::Client::with_http_client(http_client::isahc::IsahcClient::from_client(curl));
        Ok(Self { base, token: token.filter(|t| !t.is_empty()), http, local: false })
    }

    /// This client talks to the local hive.
    pub(crate) fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Whether this is the local hive (`--local-addr`).
    pub(crate) fn is_local(&self) -> bool {
        self.local
    }

    /// The same credentials, another hive.
    pub(crate) fn at(&self, base: &str) -> Result<Self> {
        Ok(Self { local: self.local, ..Self::new(base, self.token.clone())? })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, urls::join(&self.base, path));
        match &self.token {
            Some(token) => req.header("Authorization", format!("Bearer {token}")),
            None => req,
        }
    }

    /// Send `req`; its answer's first byte must come within [`FIRST_BYTE`].
    async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let cause = match deadline(FIRST_BYTE, req).await {
            Some(Ok(res)) => return Ok(res),
            Some(Err(e)) => failure::cause(&self.base, &e).await,
            None => failure::cause_of_silence(&self.base).await,
        };
        Err(Unreachable { url: self.base.clone(), cause }.into())
    }

    async fn ok(&self, req: RequestBuilder) -> Result<Response> {
        let res = self.send(req).await?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(self.hive_error(res).await)
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder, what: &str) -> Result<T> {
        let mut res = self.ok(req).await.with_context(|| what.to_owned())?;
        let body = timeout(SILENCE, async { res.body_bytes().await.map_err(|e| anyhow!("{e}")) });
        let body = body.await.with_context(|| what.to_owned())?;
        serde_json::from_slice(&body).map_err(|_| anyhow::Error::new(self.not_a_hive(&res)).context(what.to_owned()))
    }

    fn not_a_hive(&self, res: &Response) -> NotAHive {
        NotAHive::new(&self.base, res, self.local)
    }

    /// The error for a non-2xx reply: the hive's JSON error, an empty reply (rbee's hive), or
    /// [`NotAHive`] for anything else.
    async fn hive_error(&self, mut res: Response) -> anyhow::Error {
        let status = u16::from(res.status());
        let body = deadline(SILENCE, res.body_string()).await.and_then(Result::ok).unwrap_or_default();
        let api = serde_json::from_str::<ApiError>(&body).ok();
        let message = match &api {
            Some(api) => api.message.clone(),
            None if body.trim().is_empty() => res.status().canonical_reason().to_lowercase(),
            None => return self.not_a_hive(&res).into(),
        };
        HiveError { status, message, api }.into()
    }

    /// `GET /health`, asking for JSON; rbee's own hive answers `ok`, which is healthy too. A hive
    /// answers it with 200 (or its JSON error, e.g. a refused token): anything else is not a hive.
    pub(crate) async fn health(&self) -> Result<Health> {
        let what = "checking the hive's health";
        let req = self.request(Method::Get, routes::HEALTH).header("Accept", "application/json");
        let mut res = self.send(req).await.context(what)?;
        let body = deadline(SILENCE, res.body_string()).await.and_then(Result::ok).unwrap_or_default();
        if !res.status().is_success() {
            let Ok(api) = serde_json::from_str::<ApiError>(&body) else {
                return Err(anyhow::Error::new(self.not_a_hive(&res)).context(what));
            };
            let err = HiveError { status: u16::from(res.status()), message: api.message.clone(), api: Some(api) };
            return Err(anyhow::Error::new(err).context(what));
        }
        if body.trim() == HEALTH_OK {
            return Ok(Health { status: HEALTH_OK.to_owned(), ..Health::default() });
        }
        serde_json::from_str(&body).map_err(|_| anyhow::Error::new(self.not_a_hive(&res)).context(what))
    }

    /// `Some(health)` when the hive answers within `limit`.
    pub(crate) async fn probe(&self, limit: Duration) -> Option<Health> {
        timeout(limit, self.health()).await.ok()
    }

    pub(crate) async fn create_job(&self, op: &Operation) -> Result<JobCreated> {
        let req = self.request(Method::Post, routes::JOBS).body_json(op).map_err(|e| anyhow!("{e}"))?;
        self.json(req, "creating the job").await
    }

    pub(crate) async fn jobs(&self) -> Result<Vec<JobInfo>> {
        self.json(self.request(Method::Get, routes::JOBS), "listing jobs")
            .await
            .map_err(|e| self.extension(e, "GET /v1/jobs"))
    }

    /// `GET /v1/jobs/{id}` (this hive's extension: rbee's hive has no such route, and its 404
    /// carries no JSON error, so only a JSON `404` means "no such job").
    pub(crate) async fn job(&self, id: &str) -> Result<JobInfo> {
        let info = self.json(self.request(Method::Get, &urls::job(id)), "reading the job's status").await;
        info.map_err(|e| {
            if is_job_not_found(&e) {
                NoSuchJob(id.to_owned()).into()
            } else {
                self.extension(e, "GET /v1/jobs/{id}")
            }
        })
    }

    /// A route of ours that the hive lacks (a `404`/`405` without our JSON error: rbee's own hive
    /// has only submit, stream and cancel) says so instead of "not found".
    fn extension(&self, err: anyhow::Error, route: &str) -> anyhow::Error {
        let hive = err.chain().find_map(|c| c.downcast_ref::<HiveError>());
        if !hive.is_some_and(|h| matches!(h.status, 404 | 405) && h.api.is_none()) {
            return err;
        }
        err.context(format!(
            "the hive at {} has no `{route}`: this command needs rbee-smol's hive extensions (rbee's own hive \
             offers jobs, their streams and cancel only)",
            self.base
        ))
    }

    pub(crate) async fn cancel(&self, id: &str) -> Result<CancelReply> {
        let res = self.send(self.request(Method::Delete, &urls::job(id))).await?;
        match u16::from(res.status()) {
            200..=299 => Ok(CancelReply::Cancelled),
            404 => Ok(CancelReply::NotFound),
            409 => {
                let err = self.hive_error(res).await;
                let api = err.downcast_ref::<HiveError>().and_then(|e| e.api.as_ref());
                Ok(CancelReply::AlreadyEnded(api.and_then(|a| a.status)))
            }
            _ => Err(self.hive_error(res).await.context(format!("cancelling job {id}"))),
        }
    }

    pub(crate) async fn shutdown(&self) -> Result<()> {
        // The hive takes POSTs only as JSON (a browser cannot send that cross-site without a preflight).
        let req = self
            .request(Method::Post, routes::SHUTDOWN)
            .body_json(&serde_json::json!({}))
            .map_err(|e| anyhow!("{e}"))?;
        self.ok(req).await.context("asking the hive to shut down")?;
        Ok(())
    }

    /// Open a job's event stream, replaying after `last_id` when given.
    pub(crate) async fn stream(&self, sse_url: &str, last_id: Option<u64>) -> Result<Response> {
        let mut req = self.request(Method::Get, sse_url).header("Accept", rbee_protocol::sse::EVENT_STREAM);
        if let Some(id) = last_id {
            req = req.header(rbee_protocol::sse::LAST_EVENT_ID, id.to_string());
        }
        self.ok(req).await.context("opening the job's event stream")
    }
}

/// Whether `err` is this hive's JSON `404` for an unknown job.
fn is_job_not_found(err: &anyhow::Error) -> bool {
    let hive = err.chain().find_map(|c| c.downcast_ref::<HiveError>());
    let code = rbee_protocol::ErrorCode::JobNotFound;
    hive.is_some_and(|h| h.status == 404 && h.api.as_ref().is_some_and(|a| a.error == code.as_str()))
}
