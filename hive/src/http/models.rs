//! `/v1/models`: what the cache holds, and removing it.

use rbee_protocol::validate;

use crate::cache::RemoveError;
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

/// What `DELETE /v1/models/…` asks for.
#[derive(Debug, PartialEq, Eq)]
struct RemoveQuery {
    file: Option<String>,
    partial: bool,
    force: bool,
}

/// `?file=F&partial=true|false&force=true|false`, each at most once, nothing else. Parsed by hand:
/// serde_qs reads an empty `file=` as no `file`, which would remove the whole repo instead of
/// refusing the name.
fn remove_query(url: &tide::http::Url) -> Result<RemoveQuery, String> {
    let (mut file, mut partial, mut force) = (None, None, None);
    let flag = |value: &str, key: &str| match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{key}` must be `true` or `false`, not `{}`", value.escape_debug())),
    };
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "file" if file.is_none() => file = Some(value.into_owned()),
            "partial" if partial.is_none() => partial = Some(flag(&value, "partial")?),
            "force" if force.is_none() => force = Some(flag(&value, "force")?),
            "file" | "partial" | "force" => return Err(format!("`{key}` is given more than once")),
            _ => {
                return Err(format!(
                    "unknown parameter `{}`, expected `file`, `partial` or `force`",
                    key.escape_debug()
                ))
            }
        }
    }
    Ok(RemoveQuery { file, partial: partial.unwrap_or(false), force: force.unwrap_or(false) })
}

/// `DELETE /v1/models/:org/:name[?file=F][&partial=true]`.
pub(super) async fn remove(req: Request<State>) -> tide::Result {
    let repo = match (req.param("org"), req.param("name")) {
        (Ok(org), Ok(name)) => format!("{org}/{name}"),
        (_, Ok(name)) => name.to_owned(),
        _ => return error(StatusCode::BadRequest, "invalid_name", "no repo id in the path"),
    };
    let RemoveQuery { file, partial, force } = match remove_query(req.url()) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BadRequest, "invalid_query", format!("invalid query: {e}")),
    };
    let checked = validate::repo_id(&repo).and_then(|()| file.as_deref().map_or(Ok(()), validate::file_name));
    if let Err(e) = checked {
        return error(StatusCode::BadRequest, "invalid_name", e.to_string());
    }
    let cache = req.state().downloader.cache().to_owned();
    if !cache.join(crate::cache::folder_name(&repo)).exists() {
        return error(StatusCode::NotFound, "model_not_found", format!("`{repo}` is not in the cache"));
    }
    match req.state().remove_model(&repo, file.as_deref(), partial, force).await {
        Ok(report) if report.links == 0 && report.partials == 0 && report.blobs == 0 && file.is_some() => {
            let file = file.unwrap_or_default();
            error(StatusCode::NotFound, "file_not_found", format!("`{file}` is not in the cache for this repo"))
        }
        Ok(report) => json(StatusCode::Ok, &report),
        Err(e @ RemoveError::InUse { .. }) => error(StatusCode::Conflict, "model_in_use", e.to_string()),
        Err(e @ RemoveError::Symlink { .. }) => error(StatusCode::Conflict, "symlink_refused", e.to_string()),
        Err(e @ RemoveError::Io(_)) => error(StatusCode::InternalServerError, "cache_error", e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::remove_query;

    fn query(q: &str) -> Result<(Option<String>, bool), String> {
        remove_query(&tide::http::Url::parse(&format!("http://h/v1/models/o/n{q}")).unwrap())
            .map(|q| (q.file, q.partial))
    }

    #[test]
    fn parses_file_and_partial() {
        assert_eq!(query(""), Ok((None, false)));
        assert_eq!(query("?partial=true"), Ok((None, true)));
        assert_eq!(query("?file=sub%2Fm%20Q4.gguf&partial=false"), Ok((Some("sub/m Q4.gguf".into()), false)));
        // An empty `file` stays a (refused) name, never "the whole repo".
        assert_eq!(query("?file="), Ok((Some(String::new()), false)));
        assert_eq!(query("?file"), Ok((Some(String::new()), false)));
    }

    #[test]
    fn refuses_bad_queries() {
        let bad = [
            "?force=yes",
            "?force=true&force=true",
            "?partial=1",
            "?partial=",
            "?file=a&file=b",
            "?partial=true&partial=true",
            "?bogus=1",
            "?file[]=a",
        ];
        for bad in bad {
            assert!(query(bad).is_err(), "{bad}");
        }
    }
}
