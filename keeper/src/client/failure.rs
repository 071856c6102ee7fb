//! Why an exchange with the hive failed before it gave a hive's answer, in words that say what to
//! do: refused, unreachable, a TLS handshake with a plain-HTTP hive, an unknown host, or something
//! that is not a hive answering on the port. Nothing here ever echoes a foreign reply's body.

use std::time::Duration;

use crate::client::addr_of;

/// How long the keeper waits for a TCP (and TLS) connection to the hive. Streams have no overall
/// limit: a download may take hours.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the keeper waits for the first byte of the hive's answer (its status line), from the
/// moment it sends a request: connect and answer both fit in it, or [`cause_of_silence`] says
/// which of the two did not happen.
pub(crate) const FIRST_BYTE: Duration = Duration::from_secs(5);

/// How long an open stream (or an answer's body) may stay silent before the hive counts as lost:
/// three of the hive's default heartbeat intervals (10 s).
pub(crate) const SILENCE: Duration = Duration::from_secs(30);

/// What kept the request from reaching a hive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Nothing listens there (the OS's words).
    Refused(String),
    /// The TLS handshake failed: rbee hives speak plain HTTP.
    Tls(String),
    /// No connection within [`CONNECT_TIMEOUT`].
    Timeout,
    /// Connected, but no answer within [`FIRST_BYTE`] (a stuck hive, or not a hive at all).
    NoAnswer,
    /// The host name does not resolve.
    Resolve,
    /// The connection broke (or anything else the HTTP client reported).
    Other(String),
    /// A TCP connection works (only while diagnosing: curl failed, a plain connect did not).
    Connected,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(os) => write!(f, "{os}"),
            Self::Tls(detail) => write!(f, "the TLS handshake failed ({detail}); rbee hives speak plain HTTP"),
            Self::Timeout => {
                write!(f, "no connection within {}s (host down or packets dropped)", CONNECT_TIMEOUT.as_secs())
            }
            Self::NoAnswer => write!(
                f,
                "it accepts connections but sent no answer within {}s (a stuck hive, or not a hive at all)",
                FIRST_BYTE.as_secs()
            ),
            Self::Resolve => write!(f, "the host name does not resolve"),
            Self::Other(reason) => write!(f, "{reason}"),
            Self::Connected => write!(f, "the connection failed (a new one works: retry)"),
        }
    }
}

/// No hive could be reached at `url` (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the hive at {url}: {cause}")]
pub(crate) struct Unreachable {
    pub(crate) url: String,
    pub(crate) cause: Cause,
}

/// Something answered at the hive's address, but not as a hive (exit 2). Its body is never shown.
#[derive(Debug, thiserror::Error)]
#[error("something else answers on {addr} (HTTP {status}, {content_type}); is another program using the port? {fix}")]
pub(crate) struct NotAHive {
    pub(crate) addr: String,
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) fix: &'static str,
}

impl NotAHive {
    pub(crate) fn new(base: &str, res: &surf::Response, local: bool) -> Self {
        let content_type = res.content_type().map_or_else(|| "no content type".to_owned(), |m| m.essence().to_owned());
        let fix = if local { "set RBEE_HIVE_ADDR" } else { "check --hive / RBEE_HIVE_URL" };
        Self { addr: addr_of(base), status: u16::from(res.status()), content_type, fix }
    }
}

/// The cause behind surf's error, asking the OS directly when curl only says "could not connect".
pub(crate) async fn cause(base: &str, err: &surf::Error) -> Cause {
    let Some(isahc) = err.downcast_ref::<isahc::Error>() else {
        return Cause::Other(err.to_string());
    };
    match isahc {
        isahc::Error::SSLConnectFailed(detail) | isahc::Error::SSLEngineError(detail) => {
            Cause::Tls(detail.clone().unwrap_or_else(|| "no detail".to_owned()))
        }
        isahc::Error::BadServerCertificate(_) => Cause::Tls("the server's certificate is not trusted".to_owned()),
        // A plain-HTTP server waits for a request line and never answers a TLS hello.
        isahc::Error::Timeout if base.starts_with("https://") && tcp_reason(base).await == Cause::Connected => {
            Cause::Tls(format!("no TLS answer within {}s", CONNECT_TIMEOUT.as_secs()))
        }
        isahc::Error::Timeout => Cause::Timeout,
        isahc::Error::CouldntResolveHost => Cause::Resolve,
        isahc::Error::ConnectFailed => tcp_reason(base).await,
        isahc::Error::NoResponse => Cause::Other("the connection closed without an answer".to_owned()),
        other => Cause::Other(other.to_string()),
    }
}

/// Why no answer came within [`FIRST_BYTE`]: a fresh connection tells whether connecting or
/// answering is what did not happen.
pub(crate) async fn cause_of_silence(base: &str) -> Cause {
    match tcp_reason(base).await {
        // A plain-HTTP server waits for a request line and never answers a TLS hello.
        Cause::Connected if base.starts_with("https://") => {
            Cause::Tls(format!("no TLS answer within {}s", FIRST_BYTE.as_secs()))
        }
        Cause::Connected => Cause::NoAnswer,
        other => other,
    }
}

/// curl folds refused, unreachable and reset into one code: connect again to learn which.
async fn tcp_reason(base: &str) -> Cause {
    let addr = addr_of(base);
    match super::deadline(CONNECT_TIMEOUT, smol::net::TcpStream::connect(addr.as_str())).await {
        Some(Err(e)) => Cause::Refused(lowercase_first(&e.to_string())),
        Some(Ok(_)) => Cause::Connected,
        None => Cause::Timeout,
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_read_well() {
        assert_eq!(
            Cause::Refused("connection refused (os error 111)".into()).to_string(),
            "connection refused (os error 111)"
        );
        assert!(Cause::Tls("x".into()).to_string().contains("plain HTTP"));
        assert!(Cause::Timeout.to_string().contains("5s"));
        assert!(Cause::NoAnswer.to_string().contains("no answer within 5s"));
        assert_eq!(lowercase_first("Connection refused"), "connection refused");
    }

    #[test]
    fn refused_is_told_by_the_os() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cause = smol::block_on(tcp_reason(&format!("http://127.0.0.1:{port}")));
        assert!(matches!(&cause, Cause::Refused(r) if r.contains("refused")), "{cause:?}");
    }

    #[test]
    fn a_listener_that_never_answers_is_told_apart() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        assert_eq!(smol::block_on(cause_of_silence(&base)), Cause::NoAnswer);
    }
}
