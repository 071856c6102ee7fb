//! Operations a keeper asks a hive to run, in rbee's externally tagged form:
//! `{"ModelDownload":{"hive_id":"localhost","model":"org/name","file":"x.gguf"}}`.

use serde::{Deserialize, Serialize};

/// Hive id used when a request names none.
pub const DEFAULT_HIVE_ID: &str = "localhost";
/// Revision used when a download names none (the branch huggingface_hub uses).
pub const DEFAULT_REVISION: &str = "main";

fn default_hive_id() -> String {
    DEFAULT_HIVE_ID.to_owned()
}

/// One unit of work for a hive. Serialized as serde's default (externally tagged) enum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Download one file (or, without `file`, every file) of a model repo into the HF cache.
    ModelDownload(ModelDownload),
    /// List what the hive's cache holds.
    ModelList(ModelList),
    /// Remove cached files of a repo.
    ModelRm(ModelRemove),
}

/// `ModelDownload` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDownload {
    /// Which hive runs it (`localhost` by default).
    #[serde(default = "default_hive_id")]
    pub hive_id: String,
    /// Repo id, `org/name`.
    pub model: String,
    /// File inside the repo; `None` downloads every file of the revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Branch, tag or commit; `main` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// `ModelList` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelList {
    /// Which hive runs it (`localhost` by default).
    #[serde(default = "default_hive_id")]
    pub hive_id: String,
}

/// `ModelRm` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRemove {
    /// Which hive runs it (`localhost` by default).
    #[serde(default = "default_hive_id")]
    pub hive_id: String,
    /// Repo id, `org/name`.
    pub model: String,
    /// Only this file; `None` removes the whole repo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl ModelDownload {
    /// The revision to fetch, `main` when none was given.
    #[must_use]
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or(DEFAULT_REVISION)
    }
}

impl Operation {
    /// A short human description, e.g. `download org/name/file.gguf@main`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::ModelDownload(d) => match &d.file {
                Some(f) => format!("download {}/{}@{}", d.model, f, d.revision()),
                None => format!("download {}@{}", d.model, d.revision()),
            },
            Self::ModelList(_) => "model list".to_owned(),
            Self::ModelRm(r) => match &r.file {
                Some(f) => format!("rm {}/{}", r.model, f),
                None => format!("rm {}", r.model),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn externally_tagged_round_trip() {
        let json = r#"{"ModelDownload":{"hive_id":"localhost","model":"org/m","file":"a.gguf"}}"#;
        let op: Operation = serde_json::from_str(json).unwrap();
        let Operation::ModelDownload(d) = &op else { panic!("wrong variant") };
        assert_eq!(d.revision(), "main");
        assert_eq!(serde_json::to_string(&op).unwrap(), json);
    }

    #[test]
    fn hive_id_defaults_and_unknown_fields_are_refused() {
        let op: Operation = serde_json::from_str(r#"{"ModelList":{}}"#).unwrap();
        assert_eq!(op, Operation::ModelList(ModelList { hive_id: "localhost".into() }));
        let err = serde_json::from_str::<Operation>(r#"{"ModelList":{"bogus":1}}"#).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = serde_json::from_str::<Operation>(r#"{"Nope":{}}"#).unwrap_err();
        assert!(err.to_string().contains("Nope"), "{err}");
    }
}
