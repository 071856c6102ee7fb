//! The hub's repository table: revisions (refs and commit ids) → files, and blob lookup for the CDN.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::content::{FileData, RepoSpec};

/// Why a lookup failed, with huggingface.co's `X-Error-Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // named after huggingface.co's `X-Error-Code` values
pub(crate) enum HfError {
    RepoNotFound,
    RevisionNotFound,
    EntryNotFound,
}

impl HfError {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::RepoNotFound => "RepoNotFound",
            Self::RevisionNotFound => "RevisionNotFound",
            Self::EntryNotFound => "EntryNotFound",
        }
    }
}

/// One repository: every commit added so far and its refs.
#[derive(Debug, Default)]
pub(crate) struct Repo {
    pub(crate) gated: bool,
    refs: BTreeMap<String, String>,
    commits: BTreeMap<String, Vec<Arc<FileData>>>,
    latest: String,
}

impl Repo {
    /// The commit a revision (ref name or commit id) names.
    pub(crate) fn commit_of(&self, revision: &str) -> Result<&str, HfError> {
        if let Some(c) = self.refs.get(revision) {
            return Ok(c);
        }
        self.commits.get_key_value(revision).map(|(c, _)| c.as_str()).ok_or(HfError::RevisionNotFound)
    }

    /// `(commit, files)` at a revision.
    pub(crate) fn at(&self, revision: &str) -> Result<(&str, &[Arc<FileData>]), HfError> {
        let commit = self.commit_of(revision)?;
        let files = self.commits.get(commit).ok_or(HfError::RevisionNotFound)?;
        Ok((commit, files))
    }

    /// One file at a revision.
    pub(crate) fn file(&self, revision: &str, name: &str) -> Result<Arc<FileData>, HfError> {
        let (_, files) = self.at(revision)?;
        files.iter().find(|f| f.name == name).cloned().ok_or(HfError::EntryNotFound)
    }

    /// The revision helpers use when none is given: `main`, else the latest commit added.
    pub(crate) fn default_revision(&self) -> &str {
        if self.refs.contains_key("main") {
            "main"
        } else {
            &self.latest
        }
    }

    fn all_files(&self) -> impl Iterator<Item = &Arc<FileData>> {
        self.commits.values().flatten()
    }
}

/// All repositories, by id.
#[derive(Debug, Default)]
pub(crate) struct Repos {
    map: BTreeMap<String, Repo>,
}

impl Repos {
    /// Add (or add a commit to) a repo; returns the new files.
    pub(crate) fn add(&mut self, spec: &RepoSpec) -> Vec<Arc<FileData>> {
        let repo = self.map.entry(spec.id.clone()).or_default();
        repo.gated |= spec.gated;
        let files: Vec<_> = spec.files.iter().map(|f| FileData::new(&spec.id, &spec.commit, f)).collect();
        repo.commits.insert(spec.commit.clone(), files.clone());
        repo.refs.extend(spec.refs.iter().cloned());
        repo.latest.clone_from(&spec.commit);
        files
    }

    pub(crate) fn repo(&self, id: &str) -> Result<&Repo, HfError> {
        self.map.get(id).ok_or(HfError::RepoNotFound)
    }

    /// The file of `repo` whose sha256 is `sha` (what the CDN serves).
    pub(crate) fn blob(&self, repo: &str, sha: &str) -> Option<Arc<FileData>> {
        let repo = self.map.get(repo)?;
        let known = repo.all_files().find(|f| f.sha256_if_known() == Some(sha));
        known.or_else(|| repo.all_files().filter(|f| f.lfs).find(|f| f.sha256() == sha)).cloned()
    }
}
