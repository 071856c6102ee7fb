//! `rbee model get|show [ID] [FILE]`: one cached model or file.

use anyhow::Result;
use rbee_protocol::{ModelGet, Operation};

use super::super::watch::{submit, Show};
use super::{checked, Ctx, ModelArg};
use crate::exit::Exit;

/// Show a cached model (`org/repo`) or one of its files (`org/repo:file`).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    model: ModelArg,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let id = self.model.model_ref()?.to_string();
        let op = checked(Operation::ModelGet(ModelGet { hive_id: ctx.hive_id().to_owned(), id }))?;
        submit(ctx, &op, Show::Result).await
    }
}
