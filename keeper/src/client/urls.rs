//! Building hive URLs: base normalisation, paths, percent-encoded segments and queries.

use std::fmt::Write;

use anyhow::{bail, Result};

/// Where the local hive listens when none is given (the hive's own default `--addr`).
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:7835";

/// `url` without trailing slashes; `http://` is assumed when no scheme is given.
pub(crate) fn normalize_base(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    if url.is_empty() {
        bail!("the hive URL is empty");
    }
    let url = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
    if !url.starts_with("http://") && !url.starts_with("https://") {
        bail!("the hive URL `{url}` must start with http:// or https://");
    }
    Ok(url)
}

/// `host:port` of a base URL (`http://127.0.0.1:7835` → `127.0.0.1:7835`).
pub(crate) fn addr_of(base: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// `base` joined with `path`, unless `path` is already absolute.
pub(crate) fn join(base: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_owned();
    }
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("{base}{slash}{path}")
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").expect("writing to a String cannot fail");
        }
    }
    out
}

/// `/v1/jobs/{id}`.
pub(crate) fn job(id: &str) -> String {
    format!("/v1/jobs/{}", encode(id))
}

/// The default stream path of job `id`.
pub(crate) fn job_stream(id: &str) -> String {
    format!("{}/stream", job(id))
}

/// `/v1/models/{org}/{name}[?file=F][&partial=true]`.
pub(crate) fn model(repo: &str, file: Option<&str>, partial: bool) -> String {
    let segments: Vec<_> = repo.split('/').map(encode).collect();
    let mut query = Vec::new();
    if let Some(file) = file {
        query.push(format!("file={}", encode(file)));
    }
    if partial {
        query.push("partial=true".to_owned());
    }
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    format!("/v1/models/{}{query}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_normalized() {
        assert_eq!(normalize_base("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(normalize_base("127.0.0.1:9").unwrap(), "http://127.0.0.1:9");
        assert!(normalize_base("ftp://x").is_err());
        assert!(normalize_base(" ").is_err());
        assert_eq!(addr_of(&normalize_base(DEFAULT_ADDR).unwrap()), "127.0.0.1:7835");
        assert_eq!(addr_of("http://h:1/prefix"), "h:1");
    }

    #[test]
    fn paths_join_once() {
        assert_eq!(join("http://h:1", "/v1/jobs"), "http://h:1/v1/jobs");
        assert_eq!(join("http://h:1", "v1/jobs"), "http://h:1/v1/jobs");
        assert_eq!(join("http://h:1", "http://o:2/s"), "http://o:2/s");
        assert_eq!(job_stream("job-1"), "/v1/jobs/job-1/stream");
        assert_eq!(job("a/../b"), "/v1/jobs/a%2F..%2Fb");
    }

    #[test]
    fn model_paths_encode_file_and_flags() {
        assert_eq!(model("org/name", None, false), "/v1/models/org/name");
        assert_eq!(model("gpt2", None, true), "/v1/models/gpt2?partial=true");
        assert_eq!(
            model("org/name", Some("sub/m Q4.gguf"), true),
            "/v1/models/org/name?file=sub%2Fm%20Q4.gguf&partial=true"
        );
    }
}
