//! Operations a keeper asks a hive to run, in rbee's own form: one JSON object tagged by
//! `operation` (snake_case), the request's fields beside it.
//!
//! ```
//! use rbee_protocol::{Operation, Submitted};
//! let body = br#"{"operation":"model_download","hive_id":"localhost","model":"org/repo:m.gguf"}"#;
//! let Submitted::Supported(Operation::ModelDownload(d)) = Operation::parse(body).unwrap() else { panic!() };
//! assert_eq!(d.model_ref().unwrap().file.as_deref(), Some("m.gguf"));
//! ```
//!
//! Unknown fields are ignored, as rbee's serde does, so a keeper may add optional ones
//! (`revision`, `all`, `partial`, `force`). rbee's other operations (`worker_spawn`, `infer`, …)
//! parse as [`Submitted::Unsupported`]: the hive accepts them as a job that fails at once.

use serde::{Deserialize, Serialize};

use crate::validate::{self, InvalidName};

/// Hive id used when a request names none.
pub const DEFAULT_HIVE_ID: &str = "localhost";
/// Revision used when a download names none (the branch huggingface_hub uses).
pub const DEFAULT_REVISION: &str = "main";
/// What `rbee model download` fetches when no model is named (as rbee's keeper does).
pub const DEFAULT_MODEL: &str = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf";
/// GGUF quantisations tried, in order, when a download names a repo but no file (rbee's order).
pub const GGUF_PREFERENCE: [&str; 6] = ["Q4_K_M", "Q5_K_M", "Q4_0", "Q5_0", "Q8_0", "F16"];

/// Every operation rbee's contract defines that this hive does not run (accepted, then failed).
pub const RBEE_OTHER_OPERATIONS: &[&str] = &[
    "status",
    "infer",
    "image_generation",
    "image_transform",
    "image_inpaint",
    "rhai_script_save",
    "rhai_script_test",
    "rhai_script_get",
    "rhai_script_list",
    "rhai_script_delete",
    "worker_catalog_list",
    "worker_catalog_get",
    "worker_list_installed",
    "worker_installed_get",
    "worker_install",
    "worker_remove",
    "worker_spawn",
    "worker_process_list",
    "worker_process_get",
    "worker_process_delete",
    "model_load",
    "model_unload",
    "queen_check",
];

fn default_hive_id() -> String {
    DEFAULT_HIVE_ID.to_owned()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One unit of work for a hive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Operation {
    /// Download one file (or, with `all`, every file) of a model repo into the HF cache.
    ModelDownload(ModelDownload),
    /// List what the hive's cache holds.
    ModelList(ModelList),
    /// Show one cached repo or file.
    ModelGet(ModelGet),
    /// Remove a cached repo or file.
    ModelDelete(ModelDelete),
    /// Check that the hive runs jobs and streams their narration.
    HiveCheck {
        /// Which hive (`localhost` by default).
        #[serde(default = "default_hive_id")]
        alias: String,
    },
}

/// `model_download` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDownload {
    /// Which hive runs it (`localhost` by default).
    #[serde(default = "default_hive_id")]
    pub hive_id: String,
    /// `org/repo:file`, or `org/repo` (one GGUF is picked, or every file with `all`).
    pub model: String,
    /// Branch, tag or commit; `main` when absent (ours; rbee's hive ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// With a bare `org/repo`: download every file of the revision (ours).
    #[serde(default, skip_serializing_if = "is_false")]
    pub all: bool,
    /// Most upstream connections this download may use at once (ours; capped by the hive's
    /// `--max-parts`; rbee's hive ignores it). `None`: the hive's cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}

/// `model_list` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// Which hive runs it (`localhost` by default).
    #[serde(default = "default_hive_id")]
    pub hive_id: String,
}

/// `model_get` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelGet {
    /// Which hive runs it (`localhost` by default).
    #[serde(default = "default_hive_id")]
    pub hive_id: String,
    /// `org/repo` or `org/repo:file`.
    pub id: String,
}

/// `model_delete` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDelete {
    /// Which hive runs it (`localhost` by default).
    #[serde(default = "default_hive_id")]
    pub hive_id: String,
    /// `org/repo` (the whole repo) or `org/repo:file`.
    pub id: String,
    /// Only unfinished (`.incomplete`) downloads (ours).
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
    /// Cancel a job that is downloading it first, instead of refusing (ours).
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
}

/// What a `POST /v1/jobs` body asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// An operation this hive runs.
    Supported(Operation),
    /// One of rbee's other operations (its name): accepted as a job that fails at once.
    Unsupported(String),
}

/// Why a body is not an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOperation(pub String);

impl std::fmt::Display for InvalidOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid operation: {}", self.0)
    }
}

impl std::error::Error for InvalidOperation {}

impl Operation {
    /// Parses a request body: an operation of rbee's contract, or why it is not one.
    ///
    /// # Errors
    /// When the body is not a JSON object tagged by a known `operation`, or its fields are wrong.
    pub fn parse(body: &[u8]) -> Result<Submitted, InvalidOperation> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| InvalidOperation(format!("not JSON: {e}")))?;
        let Some(name) = value.get("operation") else {
            let hint = "expected a JSON object with an `operation` field, e.g. \
                        {\"operation\":\"model_download\",\"hive_id\":\"localhost\",\"model\":\"org/repo:file\"}";
            return Err(InvalidOperation(hint.to_owned()));
        };
        let Some(name) = name.as_str() else {
            return Err(InvalidOperation("`operation` must be a string".to_owned()));
        };
        if RBEE_OTHER_OPERATIONS.contains(&name) {
            return Ok(Submitted::Unsupported(name.to_owned()));
        }
        serde_json::from_value(value).map(Submitted::Supported).map_err(|e| InvalidOperation(e.to_string()))
    }

    /// The `operation` tag, e.g. `model_download`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::ModelDownload(_) => "model_download",
            Self::ModelList(_) => "model_list",
            Self::ModelGet(_) => "model_get",
            Self::ModelDelete(_) => "model_delete",
            Self::HiveCheck { .. } => "hive_check",
        }
    }

    /// Checks every name that will become a cache path.
    ///
    /// # Errors
    /// The first invalid repo id, file or revision.
    pub fn check(&self) -> Result<(), InvalidName> {
        match self {
            Self::ModelDownload(d) => {
                d.model_ref()?;
                validate::revision(d.revision())
            }
            Self::ModelGet(ModelGet { id, .. }) | Self::ModelDelete(ModelDelete { id, .. }) => {
                ModelRef::parse(id).map(drop)
            }
            Self::ModelList(_) | Self::HiveCheck { .. } => Ok(()),
        }
    }

    /// A short human description, e.g. `model_download org/repo:file.gguf@main`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::ModelDownload(d) => format!("{} {}@{}", self.name(), d.model, d.revision()),
            Self::ModelGet(ModelGet { id, .. }) | Self::ModelDelete(ModelDelete { id, .. }) => {
                format!("{} {id}", self.name())
            }
            Self::ModelList(_) | Self::HiveCheck { .. } => self.name().to_owned(),
        }
    }
}

impl ModelDownload {
    /// A download of `model` at the default revision on the default hive.
    #[must_use]
    pub fn new(model: &ModelRef) -> Self {
        Self { hive_id: default_hive_id(), model: model.to_string(), revision: None, all: false, connections: None }
    }

    /// The revision to fetch, `main` when none was given.
    #[must_use]
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or(DEFAULT_REVISION)
    }

    /// `model`, parsed and validated.
    ///
    /// # Errors
    /// When the repo id or file name is invalid.
    pub fn model_ref(&self) -> Result<ModelRef, InvalidName> {
        ModelRef::parse(&self.model)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn supported(json: &str) -> Operation {
        match Operation::parse(json.as_bytes()) {
            Ok(Submitted::Supported(op)) => op,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn rbee_bodies_parse_and_round_trip() {
        let json = r#"{"operation":"model_download","hive_id":"localhost","model":"org/m:a.gguf"}"#;
        let op = supported(json);
        assert_eq!(serde_json::to_string(&op).unwrap(), json);
        let Operation::ModelDownload(d) = &op else { panic!() };
        assert_eq!(d.revision(), "main");
        assert_eq!(d.model_ref().unwrap(), ModelRef { repo: "org/m".into(), file: Some("a.gguf".into()) });
        let list = supported(r#"{"operation":"model_list","hive_id":"localhost"}"#);
        assert_eq!(list, Operation::ModelList(ModelList { hive_id: "localhost".into() }));
        let check = supported(r#"{"operation":"hive_check","alias":"localhost"}"#);
        assert_eq!(serde_json::to_string(&check).unwrap(), r#"{"operation":"hive_check","alias":"localhost"}"#);
        for json in [
            r#"{"operation":"model_get","hive_id":"localhost","id":"org/m"}"#,
            r#"{"operation":"model_delete","hive_id":"localhost","id":"org/m:x.gguf"}"#,
        ] {
            assert_eq!(serde_json::to_string(&supported(json)).unwrap(), json);
        }
    }

    #[test]
    fn extra_fields_are_ignored_and_hive_id_defaults() {
        let op = supported(r#"{"operation":"model_download","model":"org/m","revision":"v1","all":true,"x":1}"#);
        let Operation::ModelDownload(d) = op else { panic!() };
        assert_eq!((d.hive_id.as_str(), d.revision(), d.all), ("localhost", "v1", true));
    }

    #[test]
    fn other_rbee_operations_and_garbage() {
        let got = Operation::parse(br#"{"operation":"worker_spawn","hive_id":"h","model":"m"}"#).unwrap();
        assert_eq!(got, Submitted::Unsupported("worker_spawn".into()));
        for (body, says) in [
            (&b"nope"[..], "not JSON"),
            (br#"{"ModelList":{}}"#, "`operation` field"),
            (br#"{"operation":7}"#, "must be a string"),
            (br#"{"operation":"bogus"}"#, "bogus"),
            (br#"{"operation":"model_download"}"#, "model"),
            (br#"{"operation":"model_get","hive_id":"h"}"#, "id"),
        ] {
            let err = Operation::parse(body).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn model_refs() {
        let r = ModelRef::parse("TheBloke/X-GGUF:sub/x.Q4_K_M.gguf").unwrap();
        assert_eq!((r.repo.as_str(), r.file.as_deref()), ("TheBloke/X-GGUF", Some("sub/x.Q4_K_M.gguf")));
        assert_eq!(r.to_string(), "TheBloke/X-GGUF:sub/x.Q4_K_M.gguf");
        assert_eq!(ModelRef::parse("org/m").unwrap().file, None);
        assert_eq!(ModelRef::parse("org/m:a:b").unwrap().file.as_deref(), Some("a:b"));
        for bad in ["org/../x", "org/m:", "org/m:../x", ":x", "a/b/c:f", "org/m:/etc/passwd"] {
            assert!(ModelRef::parse(bad).is_err(), "{bad}");
        }
        assert!(ModelRef::parse(DEFAULT_MODEL).is_ok());
    }

    #[test]
    fn gguf_pick_follows_rbee_order() {
        let files = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let f = files(&["README.md", "m.Q8_0.gguf", "m.Q5_K_M.gguf", "m.q4_k_m.gguf", "sub/m.Q4_K_M.gguf"]);
        assert_eq!(pick_gguf(&f), Some("m.q4_k_m.gguf"));
        assert_eq!(pick_gguf(&files(&["a.F16.gguf", "b.Q8_0.gguf"])), Some("b.Q8_0.gguf"));
        assert_eq!(pick_gguf(&files(&["z.gguf", "y.IQ2.gguf"])), Some("y.IQ2.gguf"));
        assert_eq!(pick_gguf(&files(&["model.safetensors"])), None);
    }
}
