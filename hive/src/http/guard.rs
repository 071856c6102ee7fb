//! Keeps web pages away from the hive. A page in any browser can send "simple" requests to
//! `http://127.0.0.1:7835` (a `text/plain` or form POST needs no CORS preflight), and a page on a
//! DNS-rebinding name (`attacker.example` → 127.0.0.1) is even same-origin with it. So:
//!
//! - `Host` must name this hive: a loopback name or address, the bound address, or a name the
//!   operator listed (`--allowed-hosts`). Rebinding needs the attacker's own name in `Host`. (Ollama's
//!   fix for the same hole, CVE-2024-28224, checks Host the same way.) A hive bound beyond loopback
//!   has a token, which no page can attach, so there `Host` is not checked.
//! - A request carrying `Origin` from anywhere but this hive, or `Sec-Fetch-Site: cross-site` or
//!   `same-site` (another port of `localhost` is another program), is refused: only browsers send
//!   these, and rbee's clients send neither.
//! - Every POST must say `Content-Type: application/json`, which a page can only send after a
//!   preflight; the hive never answers a preflight with CORS headers (it sends none, ever).
//!   DELETE has no body, and a cross-site DELETE always needs that preflight too.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use rbee_protocol::ErrorCode;
use tide::Request;

use super::{error, State};

/// Who may address this hive.
#[derive(Debug, Clone)]
pub struct Access {
    /// The address the hive is bound to.
    pub addr: SocketAddr,
    /// Extra host names (lowercase) the operator allowed.
    pub allowed_hosts: Vec<String>,
}

impl Access {
    /// Whether `host` (a `Host` header value, port optional) names this hive.
    #[must_use]
    pub fn host_allowed(&self, host: &str) -> bool {
        if !self.addr.ip().is_loopback() {
            return true;
        }
        let name = host_name(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        if let Ok(ip) = name.parse::<IpAddr>() {
            return ip.is_loopback() || ip == self.addr.ip();
        }
        name == "localhost" || name.ends_with(".localhost") || self.allowed_hosts.iter().any(|h| h == name)
    }
}

/// The name part of a `Host` value: `[::1]:80` → `::1`, `a.b:80` → `a.b`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a `Content-Type` value is JSON (`application/json`, parameters allowed).
fn is_json(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuses what a browser page could have sent: see the module docs.
pub(super) fn browser_guard<'a>(
    req: Request<State>,
    next: tide::Next<'a, State>,
) -> Pin<Box<dyn Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        match refusal(&req) {
            Some((code, message)) => {
                let mut res = error(code, message)?;
                res.insert_header("Connection", "close");
                Ok(res)
            }
            None => Ok(next.run(req).await),
        }
    })
}

fn refusal(req: &Request<State>) -> Option<(ErrorCode, String)> {
    let host = req.header("Host").map(|v| v.last().as_str().to_owned()).unwrap_or_default();
    if !req.state().access.host_allowed(&host) {
        let name = host_name(&host).escape_debug().to_string();
        return Some((
            ErrorCode::HostNotAllowed,
            format!(
                "`Host: {}` does not name this hive (a web page using DNS rebinding would send that); \
                 if you reach the hive by that name, start it with `--allowed-hosts {name}` \
                 (or RBEE_HIVE_ALLOWED_HOSTS={name})",
                host.escape_debug()
            ),
        ));
    }
    if let Some(origin) = req.header("Origin").map(|v| v.last().as_str().to_owned()) {
        if !origin.eq_ignore_ascii_case(&format!("http://{host}")) {
            return Some((
                ErrorCode::CrossOrigin,
                format!(
                    "requests from web pages are refused (`Origin: {}`): use `rbee` or another HTTP client",
                    origin.escape_debug()
                ),
            ));
        }
    }
    let site = req.header("Sec-Fetch-Site").map(|v| v.last().as_str().to_ascii_lowercase());
    if let Some(site @ ("cross-site" | "same-site")) = site.as_deref() {
        return Some((
            ErrorCode::CrossOrigin,
            format!("requests from other web sites are refused (`Sec-Fetch-Site: {site}`): use `rbee` or another HTTP client"),
        ));
    }
    // Only where POST is a route's method: elsewhere the answer stays 405.
    let takes_post = super::allowed_methods(req.url().path()).is_some_and(|m| m.contains("POST"));
    if req.method() == tide::http::Method::Post && takes_post {
        let content_type = req.header("Content-Type").map(|v| v.last().as_str().to_owned());
        if !content_type.as_deref().is_some_and(is_json) {
            return Some((
                ErrorCode::UnsupportedMediaType,
                format!(
                    "POST bodies must be JSON sent with `Content-Type: application/json` (got {}); \
                     `/v1/shutdown` takes `{{}}`",
                    content_type.map_or_else(|| "none".to_owned(), |c| format!("`{}`", c.escape_debug()))
                ),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(addr: &str, extra: &[&str]) -> Access {
        Access { addr: addr.parse().unwrap(), allowed_hosts: extra.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn hosts() {
        let a = access("127.0.0.1:7835", &["my-box"]);
        for ok in
            ["localhost:7835", "LOCALHOST", "127.0.0.1:7835", "127.9.9.9", "[::1]:7835", "x.localhost", "my-box:1"]
        {
            assert!(a.host_allowed(ok), "{ok}");
        }
        for bad in ["attacker.example:7835", "", "10.0.0.1", "my-box.evil", "localhost.evil.com", "[::2]"] {
            assert!(!a.host_allowed(bad), "{bad}");
        }
        assert!(access("0.0.0.0:7835", &[]).host_allowed("anything"));
    }

    #[test]
    fn json_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain;charset=UTF-8"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("application/jsonx"));
    }
}
