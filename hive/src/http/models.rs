//! `/v1/models`: what the cache holds, and removing it.

use rbee_protocol::{ErrorCode, ModelRef};
use tide::{Request, StatusCode};

use super::{error, json, State};
use crate::models;

/// `GET /v1/models`.
pub(super) async fn list(req: Request<State>) -> tide::Result {
    match models::list(req.state().downloader.cache().to_owned()).await {
        Ok(listing) => json(StatusCode::Ok, &listing),
        Err(e) => error(e.code(), e.to_string()),
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
        _ => return error(ErrorCode::InvalidName, "no repo id in the path"),
    };
    let RemoveQuery { file, partial, force } = match remove_query(req.url()) {
        Ok(q) => q,
        Err(e) => return error(ErrorCode::InvalidQuery, format!("invalid query: {e}")),
    };
    let model = match ModelRef::new(&repo, file.as_deref()) {
        Ok(m) => m,
        Err(e) => return error(ErrorCode::InvalidName, e.to_string()),
    };
    match models::delete(req.state(), &model, partial, force).await {
        Ok(report) => json(StatusCode::Ok, &report),
        Err(e) => error(e.code(), e.to_string()),
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
