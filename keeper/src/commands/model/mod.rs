//! `rbee model …`, rbee's command line: download, list, get and delete models in a hive's cache.
//! Each verb is one job on the hive (`model_download`, `model_list`, `model_get`,
//! `model_delete`), so they work against rbee's own hive too.

mod delete;
pub(crate) mod download;
mod get;
pub(crate) mod list;
mod verify;

use anyhow::Result;
use rbee_protocol::{ModelRef, Operation, DEFAULT_MODEL};

use super::Ctx;
use crate::exit::UsageError;

verbs! {
    ModelCommand {
        /// Download a model file (or, with --all, every file of a revision) into the hive's cache
        #[command(visible_alias = "dl")]
        Download(download::Args),
        /// List cached models, files, sizes and unfinished downloads
        #[command(visible_alias = "ls")]
        List(list::Args),
        /// Show one cached model or file
        #[command(visible_alias = "show")]
        Get(get::Args),
        /// Remove a cached model or file
        #[command(visible_alias = "rm", alias = "remove")]
        Delete(delete::Args),
        /// Re-hash cached blobs; quarantine (never delete) the ones that do not match (exit 1 then)
        Verify(verify::Args),
    }
}

/// A model as the user typed it: `org/repo:file`, `org/repo`, or `org/repo` and a FILE word.
#[derive(Debug, clap::Args)]
pub(crate) struct ModelArg {
    /// `org/repo:file`, or `org/repo` (then FILE, or the hive picks), or a pasted hub URL
    /// (`https://huggingface.co/org/repo/blob/main/file.gguf`)
    #[arg(default_value = DEFAULT_MODEL, value_name = "MODEL")]
    model: String,
    /// File inside the repo, when MODEL is a bare `org/repo`
    #[arg(value_name = "FILE")]
    file: Option<String>,
}

impl ModelArg {
    /// The validated model reference (exit 2 for a name the hive would refuse).
    fn model_ref(&self) -> Result<ModelRef, UsageError> {
        self.model_ref_and_revision().map(|(m, _)| m)
    }

    /// The model reference and, for a pasted URL, the revision it names.
    fn model_ref_and_revision(&self) -> Result<(ModelRef, Option<String>), UsageError> {
        let usage = |e: rbee_protocol::validate::InvalidName| UsageError(e.to_string());
        let (model, revision) = match ModelRef::parse_url(&self.model).map_err(usage)? {
            Some(parsed) => parsed,
            None => (ModelRef::parse(&self.model).map_err(usage)?, None),
        };
        self.with_file(model).map(|m| (m, revision))
    }

    fn with_file(&self, model: ModelRef) -> Result<ModelRef, UsageError> {
        let usage = |e: rbee_protocol::validate::InvalidName| UsageError(e.to_string());
        match (&model.file, &self.file) {
            (Some(_), Some(file)) => Err(UsageError(format!(
                "`{}` already names a file; drop `{file}`, or give `{}` and `{file}`",
                self.model, model.repo
            ))),
            (None, Some(file)) => ModelRef::new(&model.repo, Some(file)).map_err(usage),
            _ => Ok(model),
        }
    }
}

/// Checks `op` as the hive would, before any request (exit 2) or hive start.
fn checked(op: Operation) -> Result<Operation, UsageError> {
    op.check().map_err(|e| UsageError(e.to_string()))?;
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(model: &str, file: Option<&str>) -> Result<ModelRef, UsageError> {
        ModelArg { model: model.into(), file: file.map(Into::into) }.model_ref()
    }

    #[test]
    fn model_words() {
        assert_eq!(arg("org/m:a.gguf", None).unwrap().to_string(), "org/m:a.gguf");
        assert_eq!(arg("org/m", Some("a.gguf")).unwrap().to_string(), "org/m:a.gguf");
        assert_eq!(arg("org/m", None).unwrap().file, None);
        assert!(arg("org/m:a", Some("b")).unwrap_err().to_string().contains("already names a file"));
        let err = arg("org/../x", None).unwrap_err();
        assert!(err.to_string().starts_with("invalid model `org/../x`"), "{err}");
        assert!(arg("org/name", Some("/etc/passwd")).is_err());
        assert_eq!(arg(DEFAULT_MODEL, None).unwrap().to_string(), DEFAULT_MODEL);
        let url = ModelArg { model: "https://huggingface.co/org/m/resolve/v1/a.gguf".into(), file: None };
        let (m, rev) = url.model_ref_and_revision().unwrap();
        assert_eq!((m.to_string(), rev.as_deref()), ("org/m:a.gguf".to_owned(), Some("v1")));
    }
}
