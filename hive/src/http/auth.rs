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
        let given = req.header("Authorization").map(|v| v.last().as_str().to_owned()).unwrap_or_default();
        let given = given.strip_prefix("Bearer ").unwrap_or("");
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            Ok(next.run(req).await)
        } else {
            let mut res = error(
                ErrorCode::Unauthorized,
                "missing or wrong `Authorization: Bearer` token; set RBEE_HIVE_TOKEN to the hive's token",
            )?;
            // RFC 9110 §11.6.1: a 401 carries the challenge the client must answer.
            res.insert_header("WWW-Authenticate", "Bearer");
            Ok(res)
        }
    })
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
}
