//! A model as rbee names it (`org/repo`, `org/repo:file`, or a huggingface.co URL), and the GGUF
//! file rbee picks when a repo is named without one.

use crate::validate::{self, InvalidName};

/// GGUF quantisations tried, in order, when a download names a repo but no file (rbee's order).
pub const GGUF_PREFERENCE: [&str; 6] = ["Q4_K_M", "Q5_K_M", "Q4_0", "Q5_0", "Q8_0", "F16"];

/// A model as rbee names it: `org/repo` or `org/repo:file` (the file may contain `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    /// Repo id, `org/repo`.
    pub repo: String,
    /// File inside the repo, when named.
    pub file: Option<String>,
}

impl ModelRef {
    /// Parses and validates `org/repo[:file]` (the first `:` splits: repo ids have none).
    ///
    /// # Errors
    /// When the repo id or file name could escape the cache or is not a HF name.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        let (repo, file) = match value.split_once(':') {
            Some((repo, file)) => (repo, Some(file)),
            None => (value, None),
        };
        validate::repo_id(repo)?;
        if let Some(file) = file {
            validate::file_name(file)?;
        }
        Ok(Self { repo: repo.to_owned(), file: file.map(str::to_owned) })
    }

    /// A pasted hub URL: `https://huggingface.co/org/repo/blob/main/file.gguf`, `…/resolve/…`,
    /// `…/tree/<rev>` or the bare repo page, with the revision the URL names (percent-decoded,
    /// so `refs%2Fpr%2F1` is `refs/pr/1`). `None` when `value` is no `http(s)://` URL.
    ///
    /// ```
    /// use rbee_protocol::ModelRef;
    /// let (m, rev) = ModelRef::parse_url("https://huggingface.co/org/m/blob/v1/sub/a.gguf?download=true").unwrap().unwrap();
    /// assert_eq!((m.to_string(), rev.as_deref()), ("org/m:sub/a.gguf".to_owned(), Some("v1")));
    /// ```
    ///
    /// # Errors
    /// When it is a URL but names no valid repo, revision or file.
    pub fn parse_url(value: &str) -> Result<Option<(Self, Option<String>)>, InvalidName> {
        let Some(rest) = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://")) else {
            return Ok(None);
        };
        let bad = |reason| InvalidName { field: "model", value: value.chars().take(80).collect(), reason };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (_host, path) = rest.split_once('/').ok_or_else(|| bad("the URL names no repo"))?;
        let path = path.strip_prefix("models/").unwrap_or(path);
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let (repo, kind, tail) = match parts.as_slice() {
            [org, name] => (format!("{org}/{name}"), None, &[][..]),
            [org, name, kind, tail @ ..] => (format!("{org}/{name}"), Some(*kind), tail),
            _ => return Err(bad("the URL names no `org/repo`")),
        };
        let (revision, file) = match (kind, tail) {
            (None, _) => (None, None),
            (Some("tree"), [rev, ..]) => (Some(decode(rev)), None),
            (Some("blob" | "resolve"), [rev, file @ ..]) if !file.is_empty() => {
                (Some(decode(rev)), Some(file.iter().map(|s| decode(s)).collect::<Vec<_>>().join("/")))
            }
            _ => return Err(bad("expected a `…/org/repo/blob/<revision>/<file>` or `…/resolve/…` URL")),
        };
        if let Some(rev) = &revision {
            validate::revision(rev)?;
        }
        Ok(Some((Self::new(&repo, file.as_deref())?, revision)))
    }

    /// `repo` with `file` (both validated).
    ///
    /// # Errors
    /// As [`ModelRef::parse`].
    pub fn new(repo: &str, file: Option<&str>) -> Result<Self, InvalidName> {
        validate::repo_id(repo)?;
        file.map(validate::file_name).transpose()?;
        Ok(Self { repo: repo.to_owned(), file: file.map(str::to_owned) })
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{file}", self.repo),
            None => f.write_str(&self.repo),
        }
    }
}

/// A URL path segment, percent-decoded, or as given when that is not UTF-8 (validation refuses it).
fn decode(segment: &str) -> String {
    validate::percent_decode(segment).unwrap_or_else(|| segment.to_owned())
}

/// Picks the GGUF file rbee would pick among `files`: the first quantisation of
/// [`GGUF_PREFERENCE`] found in a `.gguf` name (case-insensitive; top-level files first), else
/// the first `.gguf` in name order. `None` when there is no GGUF file.
#[must_use]
pub fn pick_gguf(files: &[String]) -> Option<&str> {
    let mut ggufs: Vec<&str> =
        files.iter().map(String::as_str).filter(|f| f.to_ascii_lowercase().ends_with(".gguf")).collect();
    ggufs.sort_by_key(|f| (f.contains('/'), *f));
    GGUF_PREFERENCE
        .iter()
        .find_map(|q| ggufs.iter().find(|f| f.to_ascii_uppercase().contains(q)).copied())
        .or_else(|| ggufs.first().copied())
}
