//! Picking files of a repo the way `hf download --include/--exclude` does
//! (`huggingface_hub.utils.filter_repo_objects`): Python's `fnmatch` rules, so `*` matches `/`
//! too (`*.json` matches `sub/a.json`), `?` one character, `[seq]` / `[!seq]` a set; a pattern
//! ending in `/` means everything under that directory. A file is selected when it matches an
//! include pattern (or there are none) and no exclude pattern.
//!
//! ```
//! use rbee_protocol::select::{fnmatch, Selection};
//! assert!(fnmatch("*.json", "sub/config.json"));
//! let s = Selection::new(&["*.gguf".into()], &["*Q8*".into()]);
//! assert!(s.selects("m.Q4_K_M.gguf") && !s.selects("m.Q8_0.gguf") && !s.selects("README.md"));
//! ```

/// Longest pattern accepted, and most patterns in one request.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Most include (or exclude) patterns in one request.
pub const MAX_PATTERNS: usize = 64;

/// Whether `name` matches `pattern` under Python's `fnmatch.fnmatchcase` rules (case-sensitive,
/// as huggingface_hub calls it on POSIX).
#[must_use]
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

fn matches(p: &[char], n: &[char]) -> bool {
    // Iterative glob with backtracking to the last `*` (linear-ish, no recursion blow-up).
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => {
                pi += 1;
                ni += 1;
                continue;
            }
            Some('[') => {
                if let Some((hit, next)) = class(p, pi, n[ni]) {
                    if hit {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                } else if n[ni] == '[' {
                    // An unclosed `[` is a literal, as in Python.
                    pi += 1;
                    ni += 1;
                    continue;
                }
            }
            Some(c) if *c == n[ni] => {
                pi += 1;
                ni += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A `[...]` class at `p[at]`: whether `c` is in it and where the pattern goes on; `None` when
/// the bracket is not closed (then it is a literal `[`).
fn class(p: &[char], at: usize, c: char) -> Option<(bool, usize)> {
    let mut i = at + 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut hit = false;
    while i < p.len() && (p[i] != ']' || i == start) {
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|e| *e != ']') {
            hit |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= p[i] == c;
            i += 1;
        }
    }
    (i < p.len()).then_some((hit != negate, i + 1))
}

/// Include and exclude patterns, as `hf download` takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    include: Vec<String>,
    exclude: Vec<String>,
}

fn normalise(patterns: &[String]) -> Vec<String> {
    patterns.iter().map(|p| if p.ends_with('/') { format!("{p}*") } else { p.clone() }).collect()
}

impl Selection {
    /// A selection; a pattern ending in `/` is taken as `dir/*`.
    #[must_use]
    pub fn new(include: &[String], exclude: &[String]) -> Self {
        Self { include: normalise(include), exclude: normalise(exclude) }
    }

    /// Whether `file` is selected.
    #[must_use]
    pub fn selects(&self, file: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| fnmatch(p, file)))
            && !self.exclude.iter().any(|p| fnmatch(p, file))
    }

    /// Whether there is any pattern at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// Checks a list of patterns (`field` names it in the message).
///
/// # Errors
/// When there are too many, or one is empty, too long or has control characters.
pub fn check(field: &'static str, patterns: &[String]) -> Result<(), crate::validate::InvalidName> {
    let err =
        |value: &str, reason| crate::validate::InvalidName { field, value: value.chars().take(80).collect(), reason };
    if patterns.len() > MAX_PATTERNS {
        return Err(err("", "too many patterns (at most 64)"));
    }
    for p in patterns {
        if p.is_empty() {
            return Err(err(p, "a pattern must not be empty"));
        }
        if p.len() > MAX_PATTERN_LEN {
            return Err(err(p, "is too long"));
        }
        if p.chars().any(char::is_control) {
            return Err(err(p, "must not contain control characters or NUL"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_fnmatch_cases() {
        for (p, n, want) in [
            ("*.json", "config.json", true),
            ("*.json", "sub/dir/config.json", true),
            ("*", "a/b/c", true),
            ("sub/*", "sub/x/y.bin", true),
            ("?.bin", "a.bin", true),
            ("?.bin", "ab.bin", false),
            ("model-[0-9]*.safetensors", "model-00001-of-00002.safetensors", true),
            ("model-[!0-9]*", "model-0", false),
            ("model-[!0-9]*", "model-x", true),
            ("[", "[", true),
            ("a[", "a[", true),
            ("[]]", "]", true),
            ("*.GGUF", "m.gguf", false),
            ("*Q4_K_M*", "m.Q4_K_M.gguf", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(fnmatch(p, n), want, "fnmatch({p:?}, {n:?})");
        }
    }

    #[test]
    fn selection_rules() {
        let s = Selection::new(&["sub/".into(), "*.json".into()], &["*secret*".into()]);
        assert!(s.selects("sub/a.bin"));
        assert!(s.selects("config.json"));
        assert!(!s.selects("sub/secret.json"));
        assert!(!s.selects("model.gguf"));
        let all = Selection::new(&[], &["*.md".into()]);
        assert!(all.selects("x.bin") && !all.selects("README.md"));
        assert!(Selection::default().is_empty());
        assert!(check("include", &[String::new()]).is_err());
        assert!(check("include", &["*.gguf".into()]).is_ok());
    }
}
