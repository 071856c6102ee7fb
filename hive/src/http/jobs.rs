//! `/v1/jobs`: submit, list, status, cancel, and the SSE stream.

use rbee_protocol::{validate, JobCreated, Operation};
use tide::sse::Sender;
use tide::{Endpoint, Request, StatusCode};

use super::{body, error, json, State};
use crate::jobs::CancelError;

/// `POST /v1/jobs`: starts the operation at once and answers with its id and stream URL.
pub(super) async fn create(mut req: Request<State>) -> tide::Result {
    let bytes = match body(&mut req).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let op: Operation = match serde_json::from_slice(&bytes) {
        Ok(op) => op,
        Err(e) => return error(StatusCode::BadRequest, "invalid_operation", format!("invalid operation: {e}")),
    };
    if let Err(e) = check(&op) {
        return error(StatusCode::BadRequest, "invalid_name", e.to_string());
    }
    let job_id = req.state().clone().submit(op);
    json(StatusCode::Created, &JobCreated::new(job_id))
}

fn check(op: &Operation) -> Result<(), validate::InvalidName> {
    match op {
        Operation::ModelDownload(d) => {
            validate::repo_id(&d.model)?;
            validate::revision(d.revision())?;
            d.file.as_deref().map_or(Ok(()), validate::file_name)
        }
        Operation::ModelRm(r) => {
            validate::repo_id(&r.model)?;
            r.file.as_deref().map_or(Ok(()), validate::file_name)
        }
        Operation::ModelList(_) => Ok(()),
    }
}

/// `GET /v1/jobs`.
pub(super) async fn list(req: Request<State>) -> tide::Result {
    json(StatusCode::Ok, &req.state().registry.list())
}

/// `GET /v1/jobs/:id`.
pub(super) async fn status(req: Request<State>) -> tide::Result {
    let id = req.param("id")?;
    match req.state().registry.info(id) {
        Some(info) => json(StatusCode::Ok, &info),
        None => unknown(id),
    }
}

/// `DELETE /v1/jobs/:id`: 200 once the task is dropped, 404 unknown, 409 already ended.
pub(super) async fn cancel(req: Request<State>) -> tide::Result {
    let id = req.param("id")?;
    match req.state().registry.cancel(id).await {
        Ok(info) => {
            eprintln!("rbee-hive: {id} cancelled");
            json(StatusCode::Ok, &info)
        }
        Err(CancelError::NotFound(_)) => unknown(id),
        Err(e @ CancelError::Ended { status, .. }) => {
            let mut body = rbee_protocol::ApiError::new("job_ended", e.to_string());
            body.status = Some(status);
            json(StatusCode::Conflict, &body)
        }
    }
}

fn unknown(id: &str) -> tide::Result {
    error(StatusCode::NotFound, "job_not_found", format!("no job `{id}` on this hive (it may have expired)"))
}

/// `GET /v1/jobs/:id/stream`: 404 for unknown jobs, else SSE replaying after `Last-Event-ID`.
pub(super) fn stream_endpoint() -> impl Endpoint<State> {
    let sse = std::sync::Arc::new(tide::sse::endpoint(stream));
    move |req: Request<State>| {
        let known = req.param("id").ok().and_then(|id| req.state().registry.log(id)).is_some();
        let sse = sse.clone();
        async move {
            if known {
                sse.call(req).await
            } else {
                error(StatusCode::NotFound, "job_not_found", "no such job on this hive")
            }
        }
    }
}

async fn stream(req: Request<State>, sender: Sender) -> tide::Result<()> {
    let id = req.param("id")?.to_owned();
    let Some(log) = req.state().registry.log(&id) else { return Ok(()) };
    let mut last: u64 = req.header("Last-Event-ID").and_then(|v| v.last().as_str().trim().parse().ok()).unwrap_or(0);
    loop {
        let (batch, ended) = log.next_after(last).await;
        for (seq, event) in batch {
            sender.send(event.name(), event.to_json(), Some(&seq.to_string())).await?;
            last = seq;
        }
        if ended && log.since(last).0.is_empty() {
            return Ok(());
        }
    }
}
