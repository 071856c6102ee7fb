//! `rbee job attach <id>`: follow an existing job from its first event.

use anyhow::Result;

use super::Ctx;
use crate::client::job_stream;
use crate::commands::watch::{cancel, watch, Show};
use crate::exit::Exit;
use crate::signals::Signals;

/// Follow a job's events from the start; Ctrl+C cancels it, as in `model download`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Job id, `job-…`
    id: String,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let signals = Signals::install()?;
        let Some(info) = signals.race(ctx.client.job(&self.id)).await else {
            return Ok(cancel(ctx, &signals, None).await);
        };
        let info = info?;
        ctx.note(&format!("📋 job {} ({})", info.job_id, info.status.as_str()));
        watch(ctx, &signals, &info.job_id, &job_stream(&info.job_id), Show::Path).await
    }
}
