//! `rbee hive restart`: stop the hive, then start a local one with this shell's settings.

use anyhow::Result;

use super::{start, stop, Ctx};
use crate::exit::Exit;

/// Stop the hive (on `--host A`: that machine's; cancelling its running jobs; partial downloads are kept and resume), then start
/// it again in the background with this shell's HF_HUB_CACHE / HF_HOME, HF_ENDPOINT and HF_TOKEN.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on [default: the --hive address, else --local-addr]
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    /// With --host: the port the hive listens on, on that machine's loopback [default: 7835]
    #[arg(long, conflicts_with = "addr")]
    port: Option<u16>,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        stop::Args { port: self.port }.execute(ctx).await?;
        start::Args { addr: self.addr, foreground: false, port: self.port }.execute(ctx).await
    }
}
