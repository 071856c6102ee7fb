//! The upstream's HTTP at the ground floor of `download/`: reading a response header, and how many
//! redirects a download's GET follows. Here, below the hub conversation, the 429 reading and the
//! Xet rules, so that none of them needs another to read a header.

/// Redirects a download's GET follows.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// The last value of a header.
pub(crate) fn header(res: &surf::Response, name: &str) -> Option<String> {
    res.header(name).map(|v| v.last().as_str().to_owned())
}
