//! `/v1/models`: what the cache holds, and removing it.

use rbee_protocol::validate;
use tide::{Request, StatusCode};

use super::{error, json, State};

/// `GET /v1/models`.
pub(super) async fn list(req: Request<State>) -> tide::Result {
    let cache = req.state().downloader.cache().to_owned();
    match smol::unblock(move || crate::cache::list(&cache)).await {
        Ok(listing) => json(StatusCode::Ok, &listing),
        Err(e) => error(StatusCode::InternalServerError, "cache_error", e.to_string()),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    file: Option<String>,
    #[serde(default)]
    partial: bool,
}

/// `DELETE /v1/models/:org/:name[?file=F][&partial=true]`.
pub(super) async fn remove(req: Request<State>) -> tide::Result {
    let repo = match (req.param("org"), req.param("name")) {
        (Ok(org), Ok(name)) => format!("{org}/{name}"),
        (_, Ok(name)) => name.to_owned(),
        _ => return error(StatusCode::BadRequest, "invalid_name", "no repo id in the path"),
    };
    let q: RemoveQuery = match req.query() {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BadRequest, "invalid_query", format!("invalid query: {e}")),
    };
    let checked = validate::repo_id(&repo).and_then(|()| q.file.as_deref().map_or(Ok(()), validate::file_name));
    if let Err(e) = checked {
        return error(StatusCode::BadRequest, "invalid_name", e.to_string());
    }
    let cache = req.state().downloader.cache().to_owned();
    if !cache.join(crate::cache::folder_name(&repo)).exists() {
        return error(StatusCode::NotFound, "model_not_found", format!("`{repo}` is not in the cache"));
    }
    match smol::unblock(move || crate::cache::remove(&cache, &repo, q.file.as_deref(), q.partial)).await {
        Ok(report) => json(StatusCode::Ok, &report),
        Err(e) => error(StatusCode::InternalServerError, "cache_error", e.to_string()),
    }
}
