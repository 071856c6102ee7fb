//! The HTTP surface (tide): routes are thin — parse, call the domain, map errors to JSON.

mod auth;
mod jobs;
mod models;

use std::sync::Arc;

use futures_lite::AsyncReadExt;
use rbee_protocol::{ApiError, MAX_BODY_BYTES};
use tide::{Request, Response, StatusCode};

use crate::Hive;

/// Shared state of every route.
pub type State = Arc<Hive>;

/// The hive's routes.
pub fn app(state: State) -> tide::Server<State> {
    let mut app = tide::with_state(state.clone());
    app.with(auth::require_token);
    app.with(json_fallback);
    app.at("/health").get(health);
    app.at("/v1/jobs").post(jobs::create).get(jobs::list);
    app.at("/v1/jobs/:id").get(jobs::status).delete(jobs::cancel);
    app.at("/v1/jobs/:id/stream").get(jobs::stream_endpoint());
    app.at("/v1/models").get(models::list);
    app.at("/v1/models/:org/:name").delete(models::remove);
    app.at("/v1/models/:name").delete(models::remove);
    app.at("/v1/shutdown").post(shutdown);
    app
}

async fn health(req: Request<State>) -> tide::Result {
    let hive = req.state();
    json(
        StatusCode::Ok,
        &serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "running_jobs": hive.registry.running(),
            "live_tasks": hive.registry.live_tasks(),
            "jobs": hive.registry.len(),
            "cache_dir": hive.downloader.cache().display().to_string(),
        }),
    )
}

async fn shutdown(req: Request<State>) -> tide::Result {
    let hive = req.state().clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        smol::block_on(hive.registry.cancel_all());
        eprintln!("rbee-hive: shutting down on request");
        std::process::exit(0);
    });
    json(StatusCode::Accepted, &serde_json::json!({"status": "stopping"}))
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &impl serde::Serialize) -> tide::Result {
    let mut res = Response::new(status);
    res.set_body(tide::Body::from_json(body)?);
    Ok(res)
}

/// A JSON error response `{error, message}`.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> tide::Result {
    json(status, &ApiError::new(code, message))
}

/// The request body, refusing more than [`MAX_BODY_BYTES`].
pub(crate) async fn body(req: &mut Request<State>) -> Result<Vec<u8>, tide::Result> {
    let too_big =
        || error(StatusCode::PayloadTooLarge, "body_too_large", format!("request body is over {MAX_BODY_BYTES} bytes"));
    if req.len().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_big());
    }
    let mut buf = Vec::new();
    let mut reader = req.take_body().take(MAX_BODY_BYTES as u64 + 1);
    if let Err(e) = reader.read_to_end(&mut buf).await {
        return Err(error(StatusCode::BadRequest, "bad_body", format!("could not read the request body: {e}")));
    }
    if buf.len() > MAX_BODY_BYTES {
        return Err(too_big());
    }
    Ok(buf)
}

/// Turns tide's empty 404/405 (unknown route, wrong method) into JSON errors.
fn json_fallback<'a>(
    req: Request<State>,
    next: tide::Next<'a, State>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        let method = req.method();
        let path = req.url().path().to_owned();
        let res = next.run(req).await;
        let empty = res.len().is_none_or(|n| n == 0) && res.content_type().is_none();
        match res.status() {
            StatusCode::NotFound if empty => {
                error(StatusCode::NotFound, "not_found", format!("no route for {method} {path}"))
            }
            StatusCode::MethodNotAllowed if empty => {
                error(StatusCode::MethodNotAllowed, "method_not_allowed", format!("{method} is not allowed on {path}"))
            }
            _ => Ok(res),
        }
    })
}
