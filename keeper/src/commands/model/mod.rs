//! `rbee model …`: download, list and remove models in the hive's cache.

mod download;
mod list;
mod rm;

use anyhow::Result;
use clap::Subcommand;
use rbee_protocol::validate;

use super::Ctx;
use crate::exit::{Exit, UsageError};

#[derive(Debug, Subcommand)]
pub(crate) enum ModelCommand {
    /// Download a model file (or every file of a revision) into the hive's cache
    Download(download::Args),
    /// List cached models, files, sizes and unfinished downloads
    #[command(visible_alias = "ls")]
    List(list::Args),
    /// Remove cached files of a model
    Rm(rm::Args),
}

impl ModelCommand {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        match self {
            Self::Download(args) => args.execute(ctx).await,
            Self::List(args) => args.execute(ctx).await,
            Self::Rm(args) => args.execute(ctx).await,
        }
    }
}

/// Refuse names the hive would refuse, before any request (exit 2) or hive start.
fn check_names(repo: &str, file: Option<&str>, revision: Option<&str>) -> Result<(), UsageError> {
    let usage = |e: validate::InvalidName| UsageError(e.to_string());
    validate::repo_id(repo).map_err(usage)?;
    file.map(validate::file_name).transpose().map_err(usage)?;
    revision.map(validate::revision).transpose().map_err(usage)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_names("org/name", Some("a/b.gguf"), Some("main")).is_ok());
        let err = check_names("org/../x", None, None).unwrap_err();
        assert!(err.to_string().starts_with("invalid model `org/../x`"), "{err}");
        assert!(check_names("org/name", Some("/etc/passwd"), None).is_err());
        assert!(check_names("org/name", None, Some("..")).is_err());
    }
}
