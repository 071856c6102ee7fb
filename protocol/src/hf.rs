//! HuggingFace's conventions that both binaries follow, written once: the default endpoint, where
//! the cache is, and how a boolean variable reads. Pure: the binaries read the environment and
//! pass the values in.
//!
//! ```
//! use rbee_protocol::hf::{cache_dir, CacheEnv};
//! let env = CacheEnv { xdg_cache_home: Some("/x".into()), home: Some("/home/u".into()), ..CacheEnv::default() };
//! assert_eq!(cache_dir(&env), Some("/x/huggingface/hub".into()));
//! ```

use std::path::PathBuf;

/// The hub when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The environment values the cache location depends on (`None` or empty: unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheEnv {
    /// `HF_HUB_CACHE`: the cache itself.
    pub hf_hub_cache: Option<PathBuf>,
    /// `HF_HOME`: the cache is its `hub/`.
    pub hf_home: Option<PathBuf>,
    /// `XDG_CACHE_HOME`: the cache is its `huggingface/hub/`.
    pub xdg_cache_home: Option<PathBuf>,
    /// `HOME`: the cache is its `.cache/huggingface/hub/` (and `~` in the others is expanded).
    pub home: Option<PathBuf>,
}

/// The HF cache directory as huggingface_hub resolves it: `HF_HUB_CACHE`, else `$HF_HOME/hub`,
/// else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`; a leading `~` is
/// expanded. `None` when nothing is set, not even `HOME`.
#[must_use]
pub fn cache_dir(env: &CacheEnv) -> Option<PathBuf> {
    let set = |v: &Option<PathBuf>| v.clone().filter(|p| !p.as_os_str().is_empty());
    let home = set(&env.home);
    let expand = |p: PathBuf| match (p.strip_prefix("~"), &home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => p,
    };
    if let Some(cache) = set(&env.hf_hub_cache) {
        return Some(expand(cache));
    }
    let hf_home = set(&env.hf_home)
        .map(expand)
        .or_else(|| set(&env.xdg_cache_home).map(|x| expand(x).join("huggingface")))
        .or_else(|| home.clone().map(|h| h.join(".cache").join("huggingface")))?;
    Some(hf_home.join("hub"))
}

/// huggingface_hub's reading of a boolean variable such as `HF_HUB_OFFLINE`: `1`, `ON`, `YES` or
/// `TRUE` (any case, spaces around ignored) is true; anything else is false.
#[must_use]
pub fn is_true(value: &str) -> bool {
    matches!(value.trim().to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: [Option<&str>; 4]) -> CacheEnv {
        let [hf_hub_cache, hf_home, xdg_cache_home, home] = vars.map(|v| v.map(PathBuf::from));
        CacheEnv { hf_hub_cache, hf_home, xdg_cache_home, home }
    }

    #[test]
    fn the_order_is_huggingface_hubs() {
        let all = [Some("/c"), Some("/h"), Some("/x"), Some("/home/u")];
        assert_eq!(cache_dir(&env(all)), Some("/c".into()));
        assert_eq!(cache_dir(&env([None, Some("/h"), Some("/x"), Some("/u")])), Some("/h/hub".into()));
        assert_eq!(cache_dir(&env([None, None, Some("/x"), Some("/u")])), Some("/x/huggingface/hub".into()));
        assert_eq!(cache_dir(&env([None, None, None, Some("/u")])), Some("/u/.cache/huggingface/hub".into()));
        assert_eq!(cache_dir(&env([Some(""), Some(""), Some(""), None])), None, "empty counts as unset");
    }

    #[test]
    fn a_leading_tilde_is_home() {
        assert_eq!(cache_dir(&env([Some("~/c"), None, None, Some("/u")])), Some("/u/c".into()));
        assert_eq!(cache_dir(&env([None, Some("~/h"), None, Some("/u")])), Some("/u/h/hub".into()));
        assert_eq!(cache_dir(&env([None, None, Some("~x"), Some("/u")])), Some("~x/huggingface/hub".into()));
    }

    #[test]
    fn booleans_read_as_huggingface_hub_reads_them() {
        assert!(["1", "ON", "yes", " true "].iter().all(|v| is_true(v)));
        assert!(["0", "", "off", "no", "2"].iter().all(|v| !is_true(v)));
    }
}
