//! What the hive accepts from an upstream before acting on it. A hub (or a CDN, or whatever sits
//! between) is not trusted to name things on our disk or to steer our requests:
//!
//! - `X-Repo-Commit` must be a 40-hex commit: it becomes `snapshots/<commit>/`, and
//!   `refs/heads/x` there would make directories the mirror never finds again.
//! - The ETag names the blob (`blobs/<etag>`) and says how the content is checked: a sha256 (LFS)
//!   or a git blob sha1, in hex. Anything else is content that cannot be verified, refused unless
//!   the hive runs with `--allow-unverified`; even then the ETag must be a plain name (letters,
//!   digits, `-`, `_`), never a path or an escape sequence.
//! - A redirect goes to `http` or `https` only, and never from a public endpoint to loopback,
//!   link-local (`169.254.169.254`: a cloud's metadata service) or a private range: the class of
//!   the target's address must be public or the endpoint's own (the tests' hub is on loopback, so
//!   its CDN may be too). Checked before any connection is made: an address in the URL as it
//!   is, a host name (other than `localhost`, loopback by name) by every address it resolves to.
//!   curl resolves the name again when it connects, so a name whose answers change between the
//!   two lookups (DNS rebinding) is not caught; a name that cannot be resolved here is left to
//!   curl, which fails on it too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use surf::Url;

/// Longest ETag accepted as a blob name under `--allow-unverified`.
const MAX_ETAG: usize = 128;

/// Checks `X-Repo-Commit`.
pub(crate) fn commit(value: &str) -> Result<(), String> {
    if rbee_protocol::validate::is_commit(value) {
        return Ok(());
    }
    Err(format!("its `X-Repo-Commit: {}` is not a 40-hex commit id", rbee_protocol::escape(value)))
}

/// Checks an ETag (unquoted) as a blob name and a digest; `allow_unverified` lets through one
/// that is neither a sha256 nor a git sha1, if it is a plain name.
pub(crate) fn etag(value: &str, allow_unverified: bool) -> Result<(), String> {
    let hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && (value.len() == 64 || value.len() == 40) {
        return Ok(());
    }
    let plain = !value.is_empty()
        && value.len() <= MAX_ETAG
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match (plain, allow_unverified) {
        (true, true) => Ok(()),
        (true, false) => Err(format!(
            "its ETag `{value}` is neither a sha256 nor a git sha1, so its content cannot be verified; \
             start the hive with --allow-unverified to accept such files"
        )),
        (false, _) => Err(format!("its ETag `{}` is not a usable blob name", rbee_protocol::escape(value))),
    }
}

/// Where an address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    Loopback,
    LinkLocal,
    Private,
    /// `0.0.0.0`, `::`, multicast, broadcast, documentation ranges: no upstream is there.
    Unusable,
}

/// Checks a redirect from the endpoint `endpoint` to `target`, resolving a host name.
pub(crate) async fn redirect(target: &Url, endpoint: &Url) -> Result<(), String> {
    redirect_to(target, endpoint, class(target))?;
    if let (Some(surf::http::url::Host::Domain(name)), Some(port)) = (target.host(), target.port_or_known_default()) {
        if class(target) == Class::Public {
            for addr in smol::net::resolve((name, port)).await.unwrap_or_default() {
                redirect_to(target, endpoint, class_ip(addr.ip()))?;
            }
        }
    }
    Ok(())
}

/// Whether a redirect to `target`, an address of class `to`, may be followed from `endpoint`.
fn redirect_to(target: &Url, endpoint: &Url, to: Class) -> Result<(), String> {
    let shown = rbee_protocol::escape(target.as_str()).into_owned();
    if !matches!(target.scheme(), "http" | "https") {
        return Err(format!("refused a redirect to `{shown}`: only http and https are followed"));
    }
    let from = class(endpoint);
    if to == Class::Public || (to == from && to != Class::Unusable) {
        return Ok(());
    }
    Err(format!(
        "refused a redirect to `{shown}`: a {} address, and the endpoint `{}` is {}",
        name(to),
        endpoint.host_str().unwrap_or_default(),
        name(from)
    ))
}

fn class_ip(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(ip) => class_v4(ip),
        IpAddr::V6(ip) => class_v6(ip),
    }
}

fn name(class: Class) -> &'static str {
    match class {
        Class::Public => "public",
        Class::Loopback => "loopback",
        Class::LinkLocal => "link-local",
        Class::Private => "private-range",
        Class::Unusable => "unroutable",
    }
}

fn class(url: &Url) -> Class {
    match url.host() {
        Some(surf::http::url::Host::Ipv4(ip)) => class_v4(ip),
        Some(surf::http::url::Host::Ipv6(ip)) => class_v6(ip),
        Some(surf::http::url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                Class::Loopback
            } else {
                name.parse::<IpAddr>().map_or(Class::Public, class_ip)
            }
        }
        None => Class::Unusable,
    }
}

fn class_v4(ip: Ipv4Addr) -> Class {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_link_local() {
        Class::LinkLocal
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Class::Private
    } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_documentation() || a == 0 {
        Class::Unusable
    } else {
        Class::Public
    }
}

fn class_v6(ip: Ipv6Addr) -> Class {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return class_v4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Class::Loopback
    } else if first & 0xffc0 == 0xfe80 {
        Class::LinkLocal
    } else if first & 0xfe00 == 0xfc00 {
        Class::Private
    } else if ip.is_unspecified() || ip.is_multicast() {
        Class::Unusable
    } else {
        Class::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn redirect(target: &Url, endpoint: &Url) -> Result<(), String> {
        smol::block_on(super::redirect(target, endpoint))
    }

    #[test]
    fn commits_are_40_hex() {
        assert!(commit(&"a".repeat(40)).is_ok());
        for bad in ["refs/heads/x", "main", &"a".repeat(39), &"g".repeat(40), "\u{1b}[31m"] {
            let e = commit(bad).unwrap_err();
            assert!(e.contains("X-Repo-Commit") && !e.contains('\u{1b}'), "{bad}: {e}");
        }
    }

    #[test]
    fn etags_are_digests_unless_allowed() {
        assert!(etag(&"0".repeat(64), false).is_ok());
        assert!(etag(&"0".repeat(40), false).is_ok());
        assert!(etag("abc-123_x", false).unwrap_err().contains("--allow-unverified"));
        assert!(etag("abc-123_x", true).is_ok());
        for bad in ["\u{1b}[31mRED\u{1b}[0m", "a/b", "..", "", "a.b", &"a".repeat(200)] {
            let e = etag(bad, true).unwrap_err();
            assert!(e.contains("not a usable blob name") && !e.contains('\u{1b}'), "{bad:?}: {e}");
        }
    }

    #[test]
    fn redirects_stay_in_their_class() {
        let public = url("https://huggingface.co");
        let local = url("http://127.0.0.1:8080");
        for ok in ["https://93.184.215.14/x", "http://8.8.8.8/x"] {
            assert!(redirect(&url(ok), &public).is_ok(), "{ok}");
            assert!(redirect(&url(ok), &local).is_ok(), "{ok}");
        }
        for ok in ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/", "http://127.9.9.9/"] {
            assert!(redirect(&url(ok), &local).is_ok(), "{ok}");
            assert!(redirect(&url(ok), &public).is_err(), "{ok}");
        }
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://100.64.0.1/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://0.0.0.0/",
            "file:///etc/passwd",
            "ftp://127.0.0.1/x",
        ] {
            assert!(redirect(&url(bad), &local).is_err(), "{bad}");
            assert!(redirect(&url(bad), &public).is_err(), "{bad}");
        }
        assert!(redirect(&url("http://10.1.2.3/"), &url("http://10.0.0.1:7835/hf")).is_ok());
        assert!(redirect(&url("http://169.254.169.254/"), &url("http://10.0.0.1/")).is_err());
        // A name is judged by each address it resolves to.
        let metadata = class_ip("169.254.1.1".parse().unwrap());
        assert!(redirect_to(&url("http://cdn.example/"), &public, metadata).unwrap_err().contains("link-local"));
    }
}
