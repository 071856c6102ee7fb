//! `/v1/jobs`: submit, list, status and cancel (the stream is in [`super::stream`]).

use rbee_protocol::{ApiError, ErrorCode, JobCreated, Operation, Submitted};
use tide::{Request, StatusCode};

use super::{body, error, json, State};
use crate::jobs::CancelError;

/// `POST /v1/jobs`: starts the operation at once and answers `200 {job_id, sse_url}` (rbee's
/// client reads the body without looking at the status).
pub(super) async fn create(mut req: Request<State>) -> tide::Result {
    let bytes = match body(&mut req).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let submitted = match Operation::parse(&bytes) {
        Ok(s) => s,
        Err(e) => return error(ErrorCode::InvalidOperation, e.to_string()),
    };
    if let Submitted::Supported(op) = &submitted {
        if let Err(e) = op.check() {
            return error(ErrorCode::InvalidName, e.to_string());
        }
    }
    let job_id = req.state().clone().submit(submitted);
    json(StatusCode::Ok, &JobCreated::new(job_id))
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
            log::debug!("{id}: cancel requested over HTTP");
            json(StatusCode::Ok, &info)
        }
        Err(CancelError::NotFound(_)) => unknown(id),
        Err(e @ CancelError::Ended { status, .. }) => {
            let mut body = ApiError::new(ErrorCode::JobEnded, e.to_string());
            body.status = Some(status);
            json(StatusCode::Conflict, &body)
        }
    }
}

fn unknown(id: &str) -> tide::Result {
    error(ErrorCode::JobNotFound, format!("no job `{id}` on this hive (it may have expired)"))
}
