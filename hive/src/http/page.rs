//! The hive's own page: `GET /` (HTML), `/page.js`, `/page.css`, written by hand and embedded in
//! the binary (no build step, nothing from another origin), plus `GET /v1/hive`, the facts it shows.
//!
//! Every asset is sent with `Content-Security-Policy: default-src 'self'` (no inline script or
//! style, no other origin), `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
//! The page is built from the same routes as every other client: `POST /v1/jobs`, `DELETE`, the
//! model routes, and one `GET /v1/events` stream for all jobs. It holds no secret, so it is served
//! without the token; on a token hive it asks for the token and sends it as a bearer header.

use rbee_protocol::routes;
use tide::{Request, Response, StatusCode};

use super::{json, State};

/// The page's files: (route, content type, bytes).
pub const ASSETS: [(&str, &str, &str); 3] = [
    (routes::PAGE, "text/html; charset=utf-8", include_str!("../../assets/index.html")),
    (
        routes::PAGE_SCRIPT,
        "text/javascript; charset=utf-8",
        concat!(include_str!("../../assets/page.js"), include_str!("../../assets/stream.js")),
    ),
    (routes::PAGE_STYLE, "text/css; charset=utf-8", include_str!("../../assets/page.css")),
];

/// The page's content security policy: its own files and its own origin, nothing else.
pub const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Whether `path` is one of the page's files.
pub(super) fn is_page(path: &str) -> bool {
    ASSETS.iter().any(|(route, _, _)| *route == path)
}

fn asset(path: &str) -> Response {
    let (_, content_type, body) = ASSETS.iter().find(|(route, _, _)| *route == path).expect("a page route");
    let mut res = Response::new(StatusCode::Ok);
    res.set_body(*body);
    res.set_content_type(*content_type);
    res.insert_header("Content-Security-Policy", CSP);
    res.insert_header("X-Content-Type-Options", "nosniff");
    res.insert_header("Referrer-Policy", "no-referrer");
    res.insert_header("Cache-Control", "no-cache");
    res
}

/// `GET /`.
pub(super) async fn html(_: Request<State>) -> tide::Result {
    Ok(asset(routes::PAGE))
}

/// `GET /page.js`.
pub(super) async fn script(_: Request<State>) -> tide::Result {
    Ok(asset(routes::PAGE_SCRIPT))
}

/// `GET /page.css`.
pub(super) async fn style(_: Request<State>) -> tide::Result {
    Ok(asset(routes::PAGE_STYLE))
}

/// `GET /v1/hive`: version, cache dir, hub endpoint, offline mode, free disk space.
pub(super) async fn facts(req: Request<State>) -> tide::Result {
    let hive = req.state();
    let cache = hive.downloader.cache();
    let free = hive.downloader.free_bytes();
    json(
        StatusCode::Ok,
        &serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "cache_dir": std::path::absolute(cache).unwrap_or_else(|_| cache.to_owned()).display().to_string(),
            "endpoint": hive.downloader.endpoint().as_str(),
            "offline": hive.offline,
            "free_bytes": free,
            "token_required": hive.token.is_some(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// The page's weight budget (issue 26): everything it loads, under 60 KiB.
    #[test]
    fn the_page_weighs_under_60_kib() {
        let total: usize = ASSETS.iter().map(|(_, _, body)| body.len()).sum();
        assert!(total < 60 * 1024, "the page's assets weigh {total} bytes");
    }

    #[test]
    fn no_inline_script_or_style_and_nothing_from_elsewhere() {
        let html = ASSETS[0].2;
        assert!(!html.contains("<script>") && !html.contains("style="), "inline script or style");
        for (_, _, body) in ASSETS {
            assert!(!body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"));
        }
    }
}
