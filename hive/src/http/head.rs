//! The request head, read and checked before async-h1 parses it (see `serve.rs`). async-h1 is lax
//! where laxness lets one request hide in another (request smuggling): the last of two
//! `Content-Length` values wins, `+2` is a length, `Transfer-Encoding: identity` means "no body",
//! the last of two `Host` headers wins, and an absolute-form target's host is never checked. It
//! also panics on a header value that is UTF-8 but not ASCII. So each head is checked here first,
//! and anything ambiguous is answered `400` and the connection closed:
//!
//! - the head ends in CRLF CRLF, within [`MAX_HEAD`] bytes, with CRLF line ends (no bare LF);
//! - the request-target and every header value are visible ASCII (values may hold spaces and tabs);
//! - `Content-Length` is digits only, and every copy of it says the same;
//! - `Transfer-Encoding`, if present, is sent once, says exactly `chunked`, and comes without
//!   `Content-Length`;
//! - there is exactly one `Host`;
//! - an absolute-form target (`POST http://host/v1/jobs`) names a host the browser guard allows
//!   ([`Access::host_allowed`]) and the same host as `Host`.

use super::guard::Access;

/// Longest head accepted, CRLF CRLF included (async-h1 refuses 8 KiB and more).
pub(super) const MAX_HEAD: usize = 8 * 1024 - 1;

/// Most header lines in a head (async-h1's own limit).
const MAX_HEADERS: usize = 128;

/// How the body of a checked request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body, or `Content-Length` bytes of it.
    Length(u64),
    /// `Transfer-Encoding: chunked`: the end is known only by decoding it.
    Chunked,
}

/// A complete, checked request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    /// Bytes of the head, CRLF CRLF included.
    pub(super) len: usize,
    pub(super) framing: Framing,
}

/// Checks the head at the start of `buf`: `Ok(None)` while it is incomplete, `Err` with the reason
/// for a `400`.
pub(super) fn check(buf: &[u8], access: &Access) -> Result<Option<Head>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
        if buf.len() >= MAX_HEAD {
            return Err(format!("the request head is over {MAX_HEAD} bytes"));
        }
        return Ok(None);
    };
    if end > MAX_HEAD {
        return Err(format!("the request head is over {MAX_HEAD} bytes"));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(n)) if n == end => {}
        Ok(_) => return Err("the request head has a line ending in a bare LF".to_owned()),
        Err(e) => return Err(format!("malformed request head ({e})")),
    }
    if !req.path.unwrap_or_default().bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the request-target has a byte that is not visible ASCII: percent-encode it".to_owned());
    }
    for h in req.headers.iter() {
        if !h.value.iter().all(|&b| b == b'\t' || b == b' ' || b.is_ascii_graphic()) {
            return Err(format!("header `{}` has a byte that is not visible ASCII", h.name));
        }
    }
    let values = |name: &str| -> Vec<&str> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| std::str::from_utf8(h.value).unwrap_or_default().trim())
            .collect()
    };
    let hosts = values("Host");
    if hosts.len() != 1 {
        return Err(format!("{} `Host` headers were sent; send exactly one", hosts.len()));
    }
    if let Some(authority) = absolute_form_host(req.path.unwrap_or_default()) {
        if !access.host_allowed(authority) || !authority.eq_ignore_ascii_case(hosts[0]) {
            return Err(format!(
                "the absolute-form target names host `{authority}`, which is not this hive's `Host: {}`",
                hosts[0]
            ));
        }
    }
    let framing = framing(&values("Content-Length"), &values("Transfer-Encoding"))?;
    Ok(Some(Head { len: end, framing }))
}

/// The body's framing from the `Content-Length` and `Transfer-Encoding` values sent.
fn framing(lengths: &[&str], encodings: &[&str]) -> Result<Framing, String> {
    match (lengths, encodings) {
        ([], []) => Ok(Framing::Length(0)),
        ([], [te]) if te.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
        ([], [te]) => Err(format!("`Transfer-Encoding: {te}` is not supported: send `chunked` or `Content-Length`")),
        ([], _) => Err("several `Transfer-Encoding` headers were sent; send one: `chunked`".to_owned()),
        (_, [_, ..]) => Err("both `Content-Length` and `Transfer-Encoding` were sent; send one".to_owned()),
        ([first, rest @ ..], []) => {
            let len = length(first)?;
            for other in rest {
                if length(other)? != len {
                    return Err(format!("conflicting `Content-Length` values `{first}` and `{other}`"));
                }
            }
            Ok(Framing::Length(len))
        }
    }
}

fn length(value: &str) -> Result<u64, String> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| value.parse().ok()).flatten().ok_or_else(|| format!("`Content-Length: {value}` is not a length"))
}

/// The authority of an absolute-form target (`http://host:port/path` → `host:port`).
fn absolute_form_host(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    Some(rest.split(['/', '?', '#']).next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access { addr: "127.0.0.1:7835".parse().unwrap(), allowed_hosts: Vec::new() }
    }

    fn run(head: &str) -> Result<Option<Head>, String> {
        check(head.as_bytes(), &access())
    }

    #[test]
    fn plain_requests_pass() {
        let get = "GET /health HTTP/1.1\r\nHost: 127.0.0.1:7835\r\n\r\n";
        assert_eq!(run(get), Ok(Some(Head { len: get.len(), framing: Framing::Length(0) })));
        let post = "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(run(post).unwrap().unwrap().framing, Framing::Length(2));
        let chunked = "POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(run(chunked).unwrap().unwrap().framing, Framing::Chunked);
        let absolute = "GET http://127.0.0.1:7835/health HTTP/1.1\r\nHost: 127.0.0.1:7835\r\n\r\n";
        assert!(run(absolute).unwrap().is_some());
        assert_eq!(run("GET /health HTTP/1.1\r\nHost: x\r\n"), Ok(None));
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        for head in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 45\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "POST http://evil.com/v1/jobs HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "GET http://localhost/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Name: \u{e9}\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Name: a\u{1b}b\r\n\r\n",
            "GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\nHost: a\n\n\r\n\r\n",
        ] {
            assert!(run(head).is_err(), "{head:?}");
        }
        assert!(run(&format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD))).is_err());
        assert!(check(&[b'a'; MAX_HEAD], &access()).is_err());
    }
}
