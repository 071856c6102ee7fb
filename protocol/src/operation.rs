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

pub use crate::model_ref::{pick_gguf, ModelRef, GGUF_PREFERENCE};
use crate::validate::{self, InvalidName};

/// Hive id used when a request names none.
pub const DEFAULT_HIVE_ID: &str = "localhost";
/// Revision used when a download names none (the branch huggingface_hub uses).
pub const DEFAULT_REVISION: &str = "main";
/// What `rbee model download` fetches when no model is named (as rbee's keeper does).
pub const DEFAULT_MODEL: &str = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf";

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

/// The largest `max_rate` accepted (bytes per second; the schema's `maximum`).
const MAX_RATE: u64 = 18_000_000_000_000_000_000;

/// A positive whole number, also written as a float (`39120.0` is an integer in JSON Schema).
/// `n` as a whole number within `range` (a JSON client may send `3.0` for 3).
fn whole_in(n: &serde_json::Number, range: std::ops::RangeInclusive<u64>) -> Option<u64> {
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 1.8e19).map(|f| f as u64))
        .filter(|n| range.contains(n))
}

fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value: Option<serde_json::Number> = Option::deserialize(d)?;
    value
        .map(|n| {
            whole_in(&n, 1..=MAX_RATE).ok_or_else(|| {
                serde::de::Error::custom(format!("expected a positive whole number of bytes per second, got {n}"))
            })
        })
        .transpose()
}

fn connection_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let value: Option<serde_json::Number> = Option::deserialize(d)?;
    value
        .map(|n| {
            whole_in(&n, 0..=u64::from(u32::MAX))
                .and_then(|c| u32::try_from(c).ok())
                .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number of connections, got {n}")))
        })
        .transpose()
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
    /// Re-hash cached blobs; quarantine the ones whose content does not match their name (ours).
    ModelVerify(ModelVerify),
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
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "connection_count")]
    pub connections: Option<u32>,
    /// With a bare `org/repo`: download the files matching any of these `fnmatch` patterns
    /// (`hf download --include`; see [`crate::select`]) (ours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Leave out the files matching any of these patterns (`hf download --exclude`) (ours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Only list what would be fetched, the sizes and what is cached; touch nothing (ours).
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
    /// Bytes per second this job may take at most (the hive's own `--max-rate` holds too) (ours).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole_number")]
    pub max_rate: Option<u64>,
    /// Answer from the cache alone, never asking the hub: the keeper's `HF_HUB_OFFLINE=1`, honoured
    /// for this job whatever the hive's own setting (ours).
    #[serde(default, skip_serializing_if = "is_false")]
    pub offline: bool,
}

/// `model_verify` fields: re-hash cached blobs against their names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVerify {
    /// Which hive runs it (`localhost` by default).
    #[serde(default = "default_hive_id")]
    pub hive_id: String,
    /// `org/repo`; every cached repo when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
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
            Self::ModelVerify(_) => "model_verify",
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
                crate::select::check("include", &d.include)?;
                crate::select::check("exclude", &d.exclude)?;
                validate::revision(d.revision())
            }
            Self::ModelVerify(ModelVerify { id: Some(id), .. }) => ModelRef::parse(id).map(drop),
            Self::ModelVerify(_) => Ok(()),
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
            Self::ModelVerify(ModelVerify { id, .. }) => match id {
                Some(id) => format!("{} {id}", self.name()),
                None => self.name().to_owned(),
            },
            Self::ModelList(_) | Self::HiveCheck { .. } => self.name().to_owned(),
        }
    }
}

impl ModelDownload {
    /// A download of `model` at the default revision on the default hive.
    #[must_use]
    pub fn new(model: &ModelRef) -> Self {
        Self {
            hive_id: default_hive_id(),
            model: model.to_string(),
            revision: None,
            all: false,
            connections: None,
            include: Vec::new(),
            exclude: Vec::new(),
            dry_run: false,
            max_rate: None,
            offline: false,
        }
    }

    /// Whether this asks for several files of a revision (`all`, or patterns with a bare repo).
    #[must_use]
    pub fn is_snapshot(&self) -> bool {
        self.all || !self.include.is_empty() || !self.exclude.is_empty()
    }

    /// The include / exclude patterns.
    #[must_use]
    pub fn selection(&self) -> crate::select::Selection {
        crate::select::Selection::new(&self.include, &self.exclude)
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
    fn pasted_urls() {
        let url = |u| ModelRef::parse_url(u).unwrap().map(|(m, r)| (m.to_string(), r));
        assert_eq!(url("org/m:a"), None);
        assert_eq!(
            url("https://huggingface.co/org/m/resolve/main/file.gguf"),
            Some(("org/m:file.gguf".into(), Some("main".into())))
        );
        assert_eq!(
            url("https://huggingface.co/org/m/blob/refs%2Fpr%2F1/sub/f.bin"),
            Some(("org/m:sub/f.bin".into(), Some("refs/pr/1".into())))
        );
        assert_eq!(url("https://huggingface.co/org/m"), Some(("org/m".into(), None)));
        assert_eq!(url("https://huggingface.co/org/m/tree/v2"), Some(("org/m".into(), Some("v2".into()))));
        for bad in [
            "https://huggingface.co/",
            "https://huggingface.co/org/m/blob/main",
            "https://huggingface.co/org/m/blob/main/..%2Fx",
            "https://huggingface.co/org/m/commits/main",
        ] {
            assert!(ModelRef::parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_download_fields_and_verify() {
        let op = supported(
            r#"{"operation":"model_download","model":"org/m","include":["*.json"],"exclude":["x"],"dry_run":true,"max_rate":100}"#,
        );
        let Operation::ModelDownload(d) = &op else { panic!() };
        assert!(d.is_snapshot() && d.dry_run && d.max_rate == Some(100));
        let f = supported(r#"{"operation":"model_download","model":"org/m","max_rate":39120.0}"#);
        assert!(matches!(f, Operation::ModelDownload(ModelDownload { max_rate: Some(39120), .. })));
        assert!(Operation::parse(br#"{"operation":"model_download","model":"org/m","max_rate":1.5}"#).is_err());
        assert!(d.selection().selects("a/b.json"));
        op.check().unwrap();
        let bad = supported(r#"{"operation":"model_download","model":"org/m","include":[""]}"#);
        assert!(bad.check().is_err());
        let v = supported(r#"{"operation":"model_verify","hive_id":"localhost","id":"org/m"}"#);
        assert_eq!(v.describe(), "model_verify org/m");
        assert!(supported(r#"{"operation":"model_verify","id":"../x"}"#).check().is_err());
        assert_eq!(supported(r#"{"operation":"model_verify"}"#).describe(), "model_verify");
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
