//! `rbee model delete|rm [ID] [FILE] [--partial] [--force]`.

use anyhow::Result;
use rbee_protocol::{ModelDelete, Operation};

use super::super::watch::{submit, Show};
use super::{checked, Ctx, ModelArg};
use crate::exit::Exit;

/// Remove a cached model, one of its files, or only its unfinished downloads.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Only unfinished (`.incomplete`) downloads
    #[arg(long)]
    partial: bool,
    /// Cancel a job that is downloading it first, instead of refusing
    #[arg(long)]
    force: bool,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let id = self.model.model_ref()?.to_string();
        let hive_id = ctx.hive_id().to_owned();
        let op =
            checked(Operation::ModelDelete(ModelDelete { hive_id, id, partial: self.partial, force: self.force }))?;
        submit(ctx, &op, Show::Result).await
    }
}
