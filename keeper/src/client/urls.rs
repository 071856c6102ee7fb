//! Building hive URLs: base normalisation, paths, percent-encoded segments and queries.

use std::fmt::Write;

use anyhow::{bail, Result};

/// Where the local hive listens when none is given (the hive's own default `--addr`).
pub(crate) const DEFAULT_ADDR: &str = rbee_protocol::DEFAULT_HIVE_ADDR;

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

/// Where `--hive` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HiveTarget {
    /// The local hive (alias `localhost`): at `--local-addr`, started on demand.
    Local,
    /// A hive at this URL, reached by plain HTTP.
    Remote { base: String },
    /// A hive on another machine, reached through an SSH tunnel to its loopback `port`.
    Ssh { alias: String, port: u16 },
}

/// What `--hive` takes: `localhost` (the local hive); a URL or `host:port` (plain HTTP); an SSH
/// alias, as `ssh://alias[:port]` or a bare word (no scheme, no `:`, no `/`), resolved by
/// `ssh -G`; the hive's port there defaults to 7835.
pub(crate) fn hive_target(hive: &str) -> Result<HiveTarget> {
    let hive = hive.trim();
    if hive.is_empty() || hive == rbee_protocol::DEFAULT_HIVE_ID {
        return Ok(HiveTarget::Local);
    }
    if let Some(rest) = hive.strip_prefix("ssh://") {
        let (alias, port) = rest.trim_end_matches('/').split_once(':').unwrap_or((rest.trim_end_matches('/'), ""));
        let port = if port.is_empty() { Ok(rbee_protocol::DEFAULT_HIVE_PORT) } else { port.parse() };
        let Ok(port) = port else { bail!("`{hive}`: the port after the alias must be a number") };
        return ssh_alias(alias, port);
    }
    if hive.contains("://") || hive.contains(':') || hive.contains('/') {
        return Ok(HiveTarget::Remote { base: normalize_base(hive)? });
    }
    ssh_alias(hive, rbee_protocol::DEFAULT_HIVE_PORT)
}

fn ssh_alias(alias: &str, port: u16) -> Result<HiveTarget> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@');
    if alias.is_empty() || alias.starts_with('-') || !alias.chars().all(fine) {
        bail!("`{alias}` is no SSH alias (letters, digits, `.`, `-`, `_`, `@`; not starting with `-`)");
    }
    Ok(HiveTarget::Ssh { alias: alias.to_owned(), port })
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

/// `/v1/jobs/{id}`, the id percent-encoded.
pub(crate) fn job(id: &str) -> String {
    rbee_protocol::routes::job(&encode(id))
}

/// `/v1/jobs/{id}/stream`, the id percent-encoded.
pub(crate) fn job_stream(id: &str) -> String {
    rbee_protocol::routes::job_stream(&encode(id))
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
    fn hive_aliases_are_rbees() {
        assert_eq!(hive_target("localhost").unwrap(), HiveTarget::Local);
        let remote = |base: &str| HiveTarget::Remote { base: base.to_owned() };
        let ssh = |alias: &str, port| HiveTarget::Ssh { alias: alias.to_owned(), port };
        assert_eq!(hive_target("gpu1").unwrap(), ssh("gpu1", 7835));
        assert_eq!(hive_target("ssh://gpu1:9000").unwrap(), ssh("gpu1", 9000));
        assert_eq!(hive_target("ssh://me@gpu1").unwrap(), ssh("me@gpu1", 7835));
        assert!(hive_target("-oProxyCommand=x").is_err(), "no option injection");
        assert!(hive_target("ssh://gpu1:x").is_err());
        assert_eq!(hive_target("10.0.0.2:9000").unwrap(), remote("http://10.0.0.2:9000"));
        assert_eq!(hive_target("https://h/x/").unwrap(), remote("https://h/x"));
        assert!(hive_target("ftp://x").is_err());
    }

    #[test]
    fn paths_join_once() {
        assert_eq!(join("http://h:1", "/v1/jobs"), "http://h:1/v1/jobs");
        assert_eq!(join("http://h:1", "v1/jobs"), "http://h:1/v1/jobs");
        assert_eq!(join("http://h:1", "http://o:2/s"), "http://o:2/s");
        assert_eq!(job_stream("job-1"), "/v1/jobs/job-1/stream");
        assert_eq!(job("a/../b"), "/v1/jobs/a%2F..%2Fb");
    }
}
