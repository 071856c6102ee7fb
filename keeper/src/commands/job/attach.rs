//! `rbee job attach <id>`: follow an existing job from its first event. Ctrl+C stops watching and
//! leaves the job running (a watcher is not its owner); `--cancel` makes Ctrl+C cancel it, as in
//! `model download`.

use anyhow::Result;

use super::Ctx;
use crate::client::job_stream;
use crate::commands::watch::{cancel, detach, watch_with, CtrlC, Show};
use crate::exit::Exit;
use crate::signals::Signals;

/// Follow a job's events from the start; Ctrl+C stops watching (the job goes on), exit 130.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Job id, `job-…`
    id: String,
    /// Ctrl+C cancels the job on the hive instead of leaving it running
    #[arg(long)]
    cancel: bool,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let signals = Signals::install()?;
        let ctrl_c = if self.cancel { CtrlC::Cancels } else { CtrlC::Detaches };
        let Some(info) = signals.race(ctx.client.job(&self.id)).await else {
            return Ok(match ctrl_c {
                CtrlC::Cancels => cancel(ctx, &signals, Some(&self.id)).await,
                CtrlC::Detaches => detach(ctx, &self.id),
            });
        };
        let info = info?;
        ctx.note(&format!("📋 job {} ({})", info.job_id, info.status.as_str()));
        watch_with(ctx, &signals, (&info.job_id, &job_stream(&info.job_id)), Show::Path, ctrl_c).await
    }
}
