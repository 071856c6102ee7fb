//! `rbee hive …`: start, stop and check the hive daemon.

mod restart;
mod start;
mod status;
mod stop;

use anyhow::Result;
use clap::Subcommand;

use super::Ctx;
use crate::exit::Exit;

#[derive(Debug, Subcommand)]
pub(crate) enum HiveCommand {
    /// Start a local hive in the background (or in the foreground)
    Start(start::Args),
    /// Show whether the hive is up, its version, pid and job counts
    Status(status::Args),
    /// Ask the hive to shut down and wait until it has
    Stop(stop::Args),
    /// Stop the hive, then start it again with this shell's HF settings
    Restart(restart::Args),
}

impl HiveCommand {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        match self {
            Self::Start(args) => args.execute(ctx).await,
            Self::Status(args) => args.execute(ctx).await,
            Self::Stop(args) => args.execute(ctx).await,
            Self::Restart(args) => args.execute(ctx).await,
        }
    }
}
