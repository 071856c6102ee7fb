//! `rbee model list|ls`: what the hive's cache holds.

use anyhow::Result;
use rbee_protocol::{ModelList, Operation};

use super::super::watch::{submit, Show};
use super::Ctx;
use crate::exit::Exit;

/// List cached models, their files, sizes and revisions, and unfinished downloads.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let op = Operation::ModelList(ModelList { hive_id: ctx.hive_id.clone() });
        submit(ctx, &op, Show::Result).await
    }
}
