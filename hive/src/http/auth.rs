//! Bearer-token check for hives bound beyond loopback (constant-time compare).

use std::future::Future;
use std::pin::Pin;

use rbee_protocol::ErrorCode;
use tide::Request;

use super::{error, State};

/// Refuses requests without the hive's token, when one is configured.
pub(super) fn require_token<'a>(
    req: Request<State>,
    next: tide::Next<'a, State>,
) -> Pin<Box<dyn Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        let Some(token) = req.state().token.clone() else { return Ok(next.run(req).await) };
        // The page holds no secret: it asks for the token and sends it with its own requests.
        if super::page::is_page(req.url().path())
            && matches!(req.method(), tide::http::Method::Get | tide::http::Method::Head)
        {
            return Ok(next.run(req).await);
        }
        let given: Vec<String> =
            req.header("Authorization").map(|v| v.iter().map(|h| h.as_str().to_owned()).collect()).unwrap_or_default();
        if given.len() > 1 {
            let mut res = error(
                ErrorCode::AmbiguousAuthorization,
                format!("{} `Authorization` headers were sent; send exactly one", given.len()),
            )?;
            res.insert_header("Connection", "close");
            return Ok(res);
        }
        let presented = given.first().and_then(|v| bearer(v)).unwrap_or("");
        if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
            Ok(next.run(req).await)
        } else {
            let mut res = error(
                ErrorCode::Unauthorized,
                "missing or wrong `Authorization: Bearer` token; set RBEE_HIVE_TOKEN to the hive's token",
            )?;
            // RFC 9110 §11.6.1: a 401 carries the challenge the client must answer.
            res.insert_header("WWW-Authenticate", "Bearer");
            // Whoever lacks the token gets no keep-alive connection to hold on to.
            res.insert_header("Connection", "close");
            Ok(res)
        }
    })
}

/// The credentials of a `Bearer` value; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &y) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares() {
        use super::constant_time_eq as eq;
        assert!(eq(b"secret", b"secret"));
        assert!(!eq(b"secreT", b"secret"));
        assert!(!eq(b"secret1", b"secret"));
        assert!(!eq(b"", b"secret"));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        use super::bearer;
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
    }
}
