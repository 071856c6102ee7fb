//! Xet-backed files and redirect chains (issue 13).
//!
//! For a file stored in Xet, huggingface.co's resolve answer carries `X-Xet-Hash` and a `Link`
//! to `xet-auth`, and its `Location` points at a bridge host on another origin, which may
//! redirect again before the bytes come. The hive downloads such files over plain HTTP:
//!
//! - the GET follows at most [`MAX_REDIRECTS`](super::wire::MAX_REDIRECTS) redirects, sending `HF_TOKEN` only to a hop on the
//!   endpoint's own origin (`Hub::get_following`);
//! - the content is verified against `X-Linked-Etag` (the sha256), never against `X-Xet-Hash`
//!   (a Xet merkle hash, not a digest of the bytes) — `resolve::parse` never reads it;
//! - when the hub refuses plain HTTP for a Xet file (a 4xx that is no auth, 404, 416 or 429
//!   answer), the job says so plainly and names what can fetch it.

use surf::StatusCode;

use super::error::DownloadError;
use super::hub::Resolved;
use super::wire::header;

/// The plain "Xet only" error, when `res` is a Xet file and `response` a refusal.
pub(crate) fn refused(res: &Resolved, response: &surf::Response, file: &str) -> Option<DownloadError> {
    res.xet_hash.as_ref()?;
    let status = response.status();
    let other = matches!(
        status,
        StatusCode::Unauthorized
            | StatusCode::Forbidden
            | StatusCode::NotFound
            | StatusCode::RequestedRangeNotSatisfiable
            | StatusCode::TooManyRequests
    );
    (status.is_client_error() && !other).then(|| DownloadError::XetOnly {
        file: file.to_owned(),
        reason: format!(
            "HTTP {status}{}",
            header(response, "X-Error-Message").map(|m| format!(": {m}")).unwrap_or_default()
        ),
    })
}
