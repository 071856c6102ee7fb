//! The HTTP surface (tide): routes are thin — parse, call the domain, map errors to JSON.

mod auth;
mod events;
mod guard;
mod head;
mod header;
mod jobs;
mod mirror;
mod models;
mod page;
mod sendfile;
mod serve;
mod stream;

pub use guard::Access;
pub use serve::{serve, Limits};

use std::sync::Arc;

use futures_lite::AsyncReadExt;
use rbee_protocol::{routes, ApiError, ErrorCode, HEALTH_OK, MAX_BODY_BYTES};
use tide::{Request, Response, StatusCode};

use crate::Hive;

/// Shared state of every route.
pub type State = Arc<Hive>;

/// The hive's routes.
pub fn app(state: State) -> tide::Server<State> {
    let mut app = tide::with_state(state.clone());
    app.with(read_body_first);
    app.with(auth::require_token);
    app.with(guard::browser_guard);
    app.with(json_fallback);
    app.at(routes::HEALTH).get(health);
    app.at(routes::JOBS).post(jobs::create).get(jobs::list);
    app.at(routes::JOB).get(jobs::status).delete(jobs::cancel);
    app.at(routes::JOB_STREAM).get(stream::endpoint());
    app.at(routes::MODELS).get(models::list);
    app.at(routes::MODEL).delete(models::remove);
    app.at(routes::MODEL_NO_ORG).delete(models::remove);
    app.at(routes::SHUTDOWN).post(shutdown);
    app.at(routes::MIRROR_ALL).get(mirror::endpoint);
    app.at(routes::EVENTS).get(events::endpoint());
    app.at(routes::FACTS).get(page::facts);
    app.at(routes::PAGE).get(page::html);
    app.at(routes::PAGE_SCRIPT).get(page::script);
    app.at(routes::PAGE_STYLE).get(page::style);
    app
}

/// `GET /health`: rbee's `ok`, or JSON details for a client that accepts `application/json`.
async fn health(req: Request<State>) -> tide::Result {
    let hive = req.state();
    let wants_json = req.header("Accept").is_some_and(|v| v.iter().any(|a| a.as_str().contains("application/json")));
    if !wants_json {
        let mut res = Response::new(StatusCode::Ok);
        res.set_body(HEALTH_OK);
        res.set_content_type("text/plain; charset=utf-8");
        return Ok(res);
    }
    let cache = hive.downloader.cache();
    let health = rbee_protocol::Health {
        status: HEALTH_OK.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: Some(std::process::id()),
        running_jobs: hive.registry.running() as u64,
        live_tasks: hive.registry.live_tasks() as u64,
        jobs: hive.registry.count() as u64,
        cache_dir: Some(std::path::absolute(cache).unwrap_or_else(|_| cache.to_owned()).display().to_string()),
        endpoint: Some(hive.downloader.endpoint().as_str().to_owned()),
        token_set: Some(hive.downloader.has_token()),
    };
    json(StatusCode::Ok, &health)
}

async fn shutdown(req: Request<State>) -> tide::Result {
    let hive = req.state().clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let _ = smol::block_on(hive.registry.cancel_all());
        log::info!("shutting down on request");
        std::process::exit(0);
    });
    json(StatusCode::Accepted, &serde_json::json!({"status": "stopping"}))
}

/// An SSE route over `handler`. What ends a stream early (almost always a client that left: a
/// send failed) is logged in one line and never handed to tide, whose SSE endpoint logs it with
/// `{:?}`: with `RUST_BACKTRACE` set, that resolves the error's backtrace, which parses libc's
/// debug info into some 30 MiB of heap the process keeps for good (BENCHMARKS.md 13c). Once
/// a stream began, there is no one to tell anything else.
pub(crate) fn sse<F, Fut>(handler: F) -> impl tide::Endpoint<State>
where
    F: Fn(Request<State>, tide::sse::Sender) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = tide::Result<()>> + Send + Sync + 'static,
{
    tide::sse::endpoint(move |req, sender| {
        let stream = handler(req, sender);
        async move {
            if let Err(e) = stream.await {
                log::debug!("an event stream ended: {e}");
            }
            Ok(())
        }
    })
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &impl serde::Serialize) -> tide::Result {
    let mut res = Response::new(status);
    res.set_body(tide::Body::from_json(body)?);
    Ok(res)
}

/// A JSON error response `{error, message}` with the code's status.
pub(crate) fn error(code: ErrorCode, message: impl Into<String>) -> tide::Result {
    let status = StatusCode::try_from(code.status()).unwrap_or(StatusCode::InternalServerError);
    json(status, &ApiError::new(code, message))
}

/// The request body, refusing more than [`MAX_BODY_BYTES`].
pub(crate) async fn body(req: &mut Request<State>) -> Result<Vec<u8>, tide::Result> {
    let too_big = || error(ErrorCode::BodyTooLarge, format!("request body is over {MAX_BODY_BYTES} bytes"));
    if req.len().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_big());
    }
    let mut buf = Vec::new();
    let mut reader = req.take_body().take(MAX_BODY_BYTES as u64 + 1);
    if let Err(e) = reader.read_to_end(&mut buf).await {
        return Err(error(ErrorCode::BadBody, format!("could not read the request body: {e}")));
    }
    if buf.len() > MAX_BODY_BYTES {
        return Err(too_big());
    }
    Ok(buf)
}

/// Reads the request body (up to [`MAX_BODY_BYTES`] + 1) before any route or check answers, and
/// hands it on for the route to read again.
///
/// async-h1 drains a body the route left unread only after writing the response, through a
/// buffered reader that can also swallow the client's next request on a keep-alive connection;
/// that client then waits forever. (A `401`, `404` or `405` to a request with a body did this.)
/// A longer body is handed on as read so far plus the unread rest, and its reply (a `413` from
/// the routes that read bodies) closes the connection, so nothing after it can be swallowed.
fn read_body_first<'a>(
    mut req: Request<State>,
    next: tide::Next<'a, State>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        let had_content_type = req.header("Content-Type").is_some();
        let mut rest = req.take_body();
        let mut head = Vec::new();
        if let Err(e) = (&mut rest).take(MAX_BODY_BYTES as u64 + 1).read_to_end(&mut head).await {
            let mut res = if e.kind() == std::io::ErrorKind::TimedOut {
                error(ErrorCode::RequestTimeout, format!("the request body stalled: {e}"))?
            } else {
                error(ErrorCode::BadBody, format!("could not read the request body: {e}"))?
            };
            res.insert_header("Connection", "close");
            return Ok(res);
        }
        let whole = head.len() <= MAX_BODY_BYTES;
        if whole {
            req.set_body(head);
        } else {
            req.set_body(tide::Body::from_reader(futures_lite::io::Cursor::new(head).chain(rest), None));
        }
        if !had_content_type {
            req.remove_header("Content-Type");
        }
        let mut res = next.run(req).await;
        if !whole {
            res.insert_header("Connection", "close");
        }
        Ok(res)
    })
}

/// The methods each route of [`app`] takes (tide answers `HEAD` for every `GET`), for the `Allow`
/// header RFC 9110 requires on a 405. Keep in step with [`app`].
const ROUTE_METHODS: &[(&str, &str)] = &[
    (routes::HEALTH, "GET, HEAD"),
    (routes::JOBS, "GET, HEAD, POST"),
    (routes::JOB, "GET, HEAD, DELETE"),
    (routes::JOB_STREAM, "GET, HEAD"),
    (routes::MODELS, "GET, HEAD"),
    (routes::MODEL, "DELETE"),
    (routes::MODEL_NO_ORG, "DELETE"),
    (routes::SHUTDOWN, "POST"),
    (routes::MIRROR_ALL, "GET, HEAD"),
    (routes::EVENTS, "GET, HEAD"),
    (routes::FACTS, "GET, HEAD"),
    (routes::PAGE, "GET, HEAD"),
    (routes::PAGE_SCRIPT, "GET, HEAD"),
    (routes::PAGE_STYLE, "GET, HEAD"),
];

/// The `Allow` value for `path`: the route it matches (`:param` = one non-empty segment, a last
/// `*param` = one or more segments).
fn allowed_methods(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    ROUTE_METHODS.iter().find_map(|(route, methods)| {
        let pattern: Vec<&str> = route.split('/').collect();
        let rest = pattern.last().is_some_and(|p| p.starts_with('*'));
        let lengths = if rest { segments.len() >= pattern.len() } else { pattern.len() == segments.len() };
        let matches = lengths
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| if p.starts_with([':', '*']) { !s.is_empty() } else { p == s });
        matches.then_some(*methods)
    })
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
            StatusCode::NotFound if empty => error(ErrorCode::NotFound, format!("no route for {method} {path}")),
            StatusCode::MethodNotAllowed if empty => {
                let mut res = error(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {path}"))?;
                if let Some(methods) = allowed_methods(&path) {
                    res.insert_header("Allow", methods);
                }
                Ok(res)
            }
            _ => Ok(res),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::allowed_methods;

    #[test]
    fn allow_names_the_route_methods() {
        assert_eq!(allowed_methods("/health"), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/v1/jobs"), Some("GET, HEAD, POST"));
        assert_eq!(allowed_methods("/v1/jobs/job-1"), Some("GET, HEAD, DELETE"));
        assert_eq!(allowed_methods("/v1/jobs/job-1/stream"), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/v1/models/org/name"), Some("DELETE"));
        assert_eq!(allowed_methods("/v1/models/gpt2"), Some("DELETE"));
        assert_eq!(allowed_methods("/v1/shutdown"), Some("POST"));
        assert_eq!(allowed_methods("/hf/o/n/resolve/main/f"), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/hf/api/models/o/n"), Some("GET, HEAD"));
        assert_eq!(allowed_methods("/v1/jobs/"), None);
        assert_eq!(allowed_methods("/nope"), None);
    }
}
