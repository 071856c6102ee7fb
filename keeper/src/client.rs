//! The hive's HTTP API over surf (curl client): one method per route, errors with context.

mod urls;

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use futures_lite::future;
use rbee_protocol::{routes, ApiError, JobCreated, JobInfo, JobStatus, Operation, HEALTH_OK};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use surf::http::Method;
use surf::{RequestBuilder, Response};

pub(crate) use urls::{addr_of, hive_target, job_stream, normalize_base, HiveTarget, DEFAULT_ADDR};

use crate::exit::{Unreachable, UsageError};

/// The hive answered with a non-2xx status.
#[derive(Debug, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub(crate) struct HiveError {
    pub(crate) status: u16,
    pub(crate) message: String,
    pub(crate) api: Option<ApiError>,
}

/// The hive does not know this job (404).
#[derive(Debug, thiserror::Error)]
#[error("no job {0}")]
pub(crate) struct NoSuchJob(pub(crate) String);

/// `GET /health`: this hive's JSON details, or only `ok` from a hive that answers as rbee's does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Health {
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) pid: Option<u32>,
    #[serde(default)]
    pub(crate) running_jobs: u64,
    #[serde(default)]
    pub(crate) live_tasks: u64,
}

/// What `DELETE /v1/jobs/{id}` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CancelReply {
    Cancelled,
    NotFound,
    AlreadyEnded(Option<JobStatus>),
}

/// Run `work`, giving up after `limit`.
pub(crate) async fn timeout<T>(limit: Duration, work: impl Future<Output = Result<T>>) -> Result<T> {
    let late = async {
        smol::Timer::after(limit).await;
        Err(anyhow!("no answer within {limit:?}"))
    };
    future::or(work, late).await
}

/// A hive at one base URL, with an optional bearer token.
#[derive(Clone)]
pub(crate) struct HiveClient {
    base: String,
    token: Option<String>,
    http: surf::Client,
}

impl HiveClient {
    pub(crate) fn new(base: &str, token: Option<String>) -> Result<Self> {
        let base = normalize_base(base).map_err(|e| UsageError(format!("{e:#}")))?;
        surf::Url::parse(&base).map_err(|e| UsageError(format!("invalid hive URL `{base}`: {e}")))?;
        let config = surf::Config::new().set_timeout(None).set_tcp_no_delay(true);
        let http = surf::Client::try_from(config).map_err(|e| anyhow!("creating the HTTP client: {e}"))?;
        Ok(Self { base, token: token.filter(|t| !t.is_empty()), http })
    }

    /// The same credentials, another hive.
    pub(crate) fn at(&self, base: &str) -> Result<Self> {
        Self::new(base, self.token.clone())
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

    async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let unreachable = |e: surf::Error| Unreachable { url: self.base.clone(), reason: e.to_string() };
        Ok(req.await.map_err(unreachable)?)
    }

    async fn ok(&self, req: RequestBuilder) -> Result<Response> {
        let res = self.send(req).await?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(hive_error(res).await.into())
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder, what: &str) -> Result<T> {
        let mut res = self.ok(req).await.with_context(|| what.to_owned())?;
        let body = res.body_json().await.map_err(|e| anyhow!("{e}"));
        body.with_context(|| format!("{what}: the hive's reply is not what rbee expects"))
    }

    /// `GET /health`, asking for JSON; rbee's own hive answers `ok`, which is healthy too.
    pub(crate) async fn health(&self) -> Result<Health> {
        let what = "checking the hive's health";
        let req = self.request(Method::Get, routes::HEALTH).header("Accept", "application/json");
        let mut res = self.ok(req).await.context(what)?;
        let body = res.body_string().await.map_err(|e| anyhow!("{e}")).context(what)?;
        if body.trim() == HEALTH_OK {
            return Ok(Health { status: HEALTH_OK.to_owned(), ..Health::default() });
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: the reply is neither `ok` nor a hive's JSON"))
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
            409 => Ok(CancelReply::AlreadyEnded(hive_error(res).await.api.and_then(|a| a.status))),
            _ => Err(anyhow::Error::new(hive_error(res).await).context(format!("cancelling job {id}"))),
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
        let mut req = self.request(Method::Get, sse_url).header("Accept", "text/event-stream");
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id.to_string());
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

/// The HTTP status behind `err`, when the hive answered with an error.
pub(crate) fn status_of(err: &anyhow::Error) -> Option<u16> {
    err.chain().find_map(|c| c.downcast_ref::<HiveError>()).map(|e| e.status)
}

async fn hive_error(mut res: Response) -> HiveError {
    let status = u16::from(res.status());
    let body = res.body_string().await.unwrap_or_default();
    let api = serde_json::from_str::<ApiError>(&body).ok();
    let message = match &api {
        Some(api) => api.message.clone(),
        None if body.trim().is_empty() => res.status().canonical_reason().to_lowercase(),
        None => body.trim().to_owned(),
    };
    HiveError { status, message, api }
}
