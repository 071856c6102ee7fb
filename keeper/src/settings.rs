//! The HuggingFace settings this shell would give a hive, and what differs from the ones the
//! running local hive was started with. A hive reads `HF_HUB_CACHE` / `HF_HOME`, `HF_ENDPOINT`
//! and `HF_TOKEN` once, at start; a keeper run with other values would otherwise download into
//! the old cache from the old hub without a word. The token itself is never compared or shown:
//! only whether one is set.

use std::path::{Path, PathBuf};

use crate::client::Health;

/// The settings that matter to a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HfSettings {
    /// The resolved cache directory, as huggingface_hub and the hive resolve it
    /// ([`rbee_protocol::hf::cache_dir`]).
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) endpoint: String,
    pub(crate) token_set: bool,
}

impl HfSettings {
    /// This process's environment (the keeper passes it on to a hive it starts).
    pub(crate) fn from_env() -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let path = |name| var(name).map(PathBuf::from);
        let cache_dir = rbee_protocol::hf::cache_dir(&rbee_protocol::hf::CacheEnv {
            hf_hub_cache: path("HF_HUB_CACHE"),
            hf_home: path("HF_HOME"),
            xdg_cache_home: path("XDG_CACHE_HOME"),
            home: path("HOME"),
        });
        let endpoint = var("HF_ENDPOINT")
            .map_or_else(|| rbee_protocol::hf::DEFAULT_ENDPOINT.to_owned(), |e| e.to_string_lossy().into());
        Self { cache_dir, endpoint, token_set: var("HF_TOKEN").is_some() }
    }

    /// One line per setting the hive uses differently: `HF_ENDPOINT: hive http://a/, here http://b/`.
    /// Nothing when the hive does not report its settings (rbee's own hive).
    pub(crate) fn differences(&self, hive: &Health) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(theirs), Some(ours)) = (&hive.cache_dir, &self.cache_dir) {
            if !same_dir(Path::new(theirs), ours) {
                out.push(format!("HF_HUB_CACHE / HF_HOME: hive {theirs}, here {}", ours.display()));
            }
        }
        if let Some(theirs) = &hive.endpoint {
            if normalize_url(theirs) != normalize_url(&self.endpoint) {
                out.push(format!("HF_ENDPOINT: hive {theirs}, here {}", self.endpoint));
            }
        }
        if let Some(theirs) = hive.token_set {
            if theirs != self.token_set {
                let word = |set| if set { "set" } else { "not set" };
                out.push(format!("HF_TOKEN: hive {}, here {}", word(theirs), word(self.token_set)));
            }
        }
        out
    }
}

/// The warning for `diffs` (empty when there are none).
pub(crate) fn warning(base: &str, pid: Option<u32>, diffs: &[String]) -> Vec<String> {
    if diffs.is_empty() {
        return Vec::new();
    }
    let pid = pid.map_or_else(String::new, |p| format!(" (pid {p})"));
    let mut lines = vec![format!("⚠️  the local hive at {base}{pid} runs with other HF settings than this shell:")];
    lines.extend(diffs.iter().map(|d| format!("⚠️    {d}")));
    lines.push(
        "⚠️  a hive keeps the settings it started with: run `rbee hive restart` (or `rbee hive stop`, then this \
         command again) to use this shell's settings"
            .to_owned(),
    );
    lines
}

/// huggingface_hub's reading of a boolean variable such as `HF_HUB_OFFLINE`
/// ([`rbee_protocol::hf::is_true`]), as a clap value parser.
///
/// # Errors
/// Never.
pub(crate) fn truthy(value: &str) -> Result<bool, std::convert::Infallible> {
    Ok(rbee_protocol::hf::is_true(value))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canon =
        |p: &Path| std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_owned());
    canon(a) == canon(b)
}

fn normalize_url(url: &str) -> String {
    surf::Url::parse(url.trim()).map_or_else(|_| url.trim().trim_end_matches('/').to_owned(), |u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> HfSettings {
        HfSettings { cache_dir: Some("/tmp/a".into()), endpoint: "http://127.0.0.1:9".into(), token_set: false }
    }

    /// What a hive's `/health` reports of its HF settings.
    fn reported(cache_dir: &str, endpoint: &str, token_set: bool) -> Health {
        Health {
            cache_dir: Some(cache_dir.into()),
            endpoint: Some(endpoint.into()),
            token_set: Some(token_set),
            ..Health::default()
        }
    }

    #[test]
    fn equal_settings_say_nothing() {
        let hive = reported("/tmp/a/", "http://127.0.0.1:9/", false);
        assert!(ours().differences(&hive).is_empty());
        assert!(ours().differences(&Health::default()).is_empty(), "rbee's hive reports nothing");
    }

    #[test]
    fn each_difference_is_named_without_the_token() {
        let hive = reported("/tmp/b", "https://huggingface.co/", true);
        let diffs = ours().differences(&hive);
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert_eq!(diffs[2], "HF_TOKEN: hive set, here not set");
        let lines = warning("http://h:1", Some(7), &diffs);
        assert!(lines[0].contains("(pid 7)") && lines.last().unwrap().contains("rbee hive restart"));
    }
}
