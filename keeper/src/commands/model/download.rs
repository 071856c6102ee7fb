//! `rbee model download|dl [MODEL] [FILE] [--revision R] [--all] [--connections N]`.

use anyhow::Result;
use rbee_protocol::{ModelDownload, Operation};

use super::super::watch::{submit, Show};
use super::{checked, Ctx, ModelArg};
use crate::exit::{Exit, UsageError};

/// Download a model into the hive's cache and print its local path. Without a file, the hive
/// picks one GGUF (Q4_K_M first, as rbee does); `--all` downloads every file instead.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Branch, tag or commit [default: main]
    #[arg(long, short)]
    revision: Option<String>,
    /// Every file of the revision (MODEL must be a bare `org/repo`)
    #[arg(long)]
    all: bool,
    /// Most upstream connections the hive may use for this download [default: the hive's
    /// `--max-parts`, 16]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    connections: Option<u32>,
}

impl Args {
    fn operation(&self, hive_id: &str) -> Result<Operation, UsageError> {
        let model = self.model.model_ref()?;
        if self.all && model.file.is_some() {
            return Err(UsageError(format!("--all downloads a whole repo: give `{}` without a file", model.repo)));
        }
        let mut d = ModelDownload::new(&model);
        d.hive_id = hive_id.to_owned();
        d.revision.clone_from(&self.revision);
        d.all = self.all;
        d.connections = self.connections;
        checked(Operation::ModelDownload(d))
    }

    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let op = self.operation(&ctx.hive_id)?;
        submit(ctx, &op, Show::Path).await
    }
}
