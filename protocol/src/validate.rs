//! Validation of the names that become cache paths: repo ids, revisions and file names.
//!
//! Anything that could escape the cache directory is refused: `..`, absolute paths,
//! backslashes, NUL and other control characters, empty segments, over-long names.

/// Longest repo id, revision or file path accepted.
pub const MAX_NAME_LEN: usize = 1024;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    /// Which field (`model`, `file`, `revision`).
    pub field: &'static str,
    /// The refused value (control characters escaped).
    pub value: String,
    /// The rule it broke.
    pub reason: &'static str,
}

impl std::fmt::Display for InvalidName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {} `{}`: {}", self.field, self.value.escape_debug(), self.reason)
    }
}

impl std::error::Error for InvalidName {}

fn check_common(field: &'static str, value: &str) -> Result<(), InvalidName> {
    let err = |reason| Err(InvalidName { field, value: value.chars().take(80).collect(), reason });
    if value.is_empty() {
        return err("must not be empty");
    }
    if value.len() > MAX_NAME_LEN {
        return err("is too long");
    }
    if value.chars().any(char::is_control) {
        return err("must not contain control characters or NUL");
    }
    if value.contains('\\') {
        return err("must not contain backslashes");
    }
    if value.contains('%') {
        return err("must not contain percent-encoding");
    }
    if value.starts_with('/') {
        return err("must be relative, not an absolute path");
    }
    if value.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return err("must not contain empty, `.` or `..` path segments");
    }
    Ok(())
}

/// A repo id: `org/name` (or a bare `name`), each part `[A-Za-z0-9._-]`, at most 96 chars each.
///
/// # Errors
/// When the id could escape the cache or is not a HF repo id.
pub fn repo_id(value: &str) -> Result<(), InvalidName> {
    check_common("model", value)?;
    let err = |reason| Err(InvalidName { field: "model", value: value.to_owned(), reason });
    let parts: Vec<_> = value.split('/').collect();
    if parts.len() > 2 {
        return err("must be `org/name`");
    }
    for p in parts {
        if p.len() > 96 {
            return err("each part must be at most 96 characters");
        }
        if !p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return err("may only contain letters, digits, `.`, `_` and `-`");
        }
        if p.starts_with(['.', '-']) || p.ends_with('.') || p.contains("--") || p.contains("..") {
            return err("parts must not start with `.`/`-`, end with `.`, or contain `--`/`..`");
        }
    }
    Ok(())
}

/// A revision: branch, tag or commit (slashes allowed, as in `refs/pr/1`).
///
/// # Errors
/// When the revision could escape the cache.
pub fn revision(value: &str) -> Result<(), InvalidName> {
    check_common("revision", value)?;
    if value.len() > 255 {
        return Err(InvalidName { field: "revision", value: value.to_owned(), reason: "is too long" });
    }
    Ok(())
}

/// A file path inside a repo (slashes allowed for sub-directories).
///
/// # Errors
/// When the path could escape the snapshot directory.
pub fn file_name(value: &str) -> Result<(), InvalidName> {
    check_common("file", value)?;
    if value.split('/').any(|s| s.len() > 255) {
        return Err(InvalidName { field: "file", value: value.to_owned(), reason: "a path segment is too long" });
    }
    Ok(())
}

/// Whether `c` would hide or reorder text on a terminal ([`crate::text::is_unsafe`]: control,
/// bidi, zero-width characters and U+2028/9).
#[must_use]
pub fn is_deceptive(c: char) -> bool {
    crate::text::is_unsafe(c)
}

/// `value` safe to print ([`crate::text::sanitize`], the one sanitizer): `a\u{202e}txt.exe`
/// cannot pass for `aexe.txt` on a terminal.
///
/// ```
/// assert_eq!(rbee_protocol::validate::escape("a\u{202e}b\n"), "a\\u{202e}b\\u{a}");
/// assert_eq!(rbee_protocol::validate::escape("plain ✅ name"), "plain ✅ name");
/// ```
#[must_use]
pub fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    crate::text::sanitize(value)
}

/// `%XX` escapes of a URL path segment decoded (malformed escapes kept as they are); `None` when
/// the result is not UTF-8. Decoded names are then validated like any other.
///
/// ```
/// assert_eq!(rbee_protocol::validate::percent_decode("refs%2Fpr%2F1").as_deref(), Some("refs/pr/1"));
/// assert_eq!(rbee_protocol::validate::percent_decode("100%").as_deref(), Some("100%"));
/// assert_eq!(rbee_protocol::validate::percent_decode("%ff"), None);
/// ```
#[must_use]
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `value` is a full 40-hex commit id (a revision that never moves).
#[must_use]
pub fn is_commit(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        repo_id("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF").unwrap();
        repo_id("gpt2").unwrap();
        revision("main").unwrap();
        revision("refs/pr/1").unwrap();
        file_name("sub/dir/model.Q4_K_M.gguf").unwrap();
    }

    #[test]
    fn refuses_escapes() {
        for bad in
            ["", "../x", "a/../b", "/abs", "a\\b", "a\0b", "a/b/c", "a%2e%2e/b", "a//b", "a/.", &"x".repeat(2000)]
        {
            assert!(repo_id(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "..", "../etc/passwd", "/etc/passwd", "a\\..\\b", "a\nb", "%2e%2e/x", "a/./b", "a/"] {
            assert!(file_name(bad).is_err(), "{bad:?}");
            assert!(revision(bad).is_err(), "{bad:?}");
        }
    }
}
