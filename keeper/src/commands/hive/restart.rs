//! `rbee hive restart`: stop the hive, then start a local one with this shell's settings.

use anyhow::Result;

use super::{start, stop, Ctx};
use crate::exit::Exit;

/// Stop the hive (cancelling its running jobs; partial downloads are kept and resume), then start
/// it again in the background with this shell's HF_HUB_CACHE / HF_HOME, HF_ENDPOINT and HF_TOKEN.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on [default: the --hive address, else --local-addr]
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        stop::Args {}.execute(ctx).await?;
        start::Args { addr: self.addr, foreground: false }.execute(ctx).await
    }
}
