//! `rbee hive uninstall --host A`.

use anyhow::Result;

use super::{remote, Ctx};
use crate::exit::Exit;
use crate::ssh::remote::BINARY;

/// Stop the hive on an SSH host and remove its rbee-hive (its HF cache and log stay).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let host = super::needs_host(ctx, "uninstall")?;
        remote::stop(ctx, host, None).await?;
        host.uninstall().await?;
        if !ctx.json() {
            outln!("🐝 removed {BINARY} from {} (its HF cache and log stay)", host.host.alias);
        }
        Ok(Exit::Ok)
    }
}
