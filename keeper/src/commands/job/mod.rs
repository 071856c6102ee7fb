//! `rbee job …`: list, inspect, cancel and attach to hive jobs.

mod attach;
mod cancel;
mod list;
mod status;

use anyhow::Result;
use clap::Subcommand;

use super::Ctx;
use crate::exit::Exit;

#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// List the hive's jobs
    #[command(visible_alias = "ls")]
    List(list::Args),
    /// Show one job's status
    Status(status::Args),
    /// Cancel a running job
    Cancel(cancel::Args),
    /// Follow a job's events from the start, as `model download` does
    Attach(attach::Args),
}

impl JobCommand {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        match self {
            Self::List(args) => args.execute(ctx).await,
            Self::Status(args) => args.execute(ctx).await,
            Self::Cancel(args) => args.execute(ctx).await,
            Self::Attach(args) => args.execute(ctx).await,
        }
    }
}
