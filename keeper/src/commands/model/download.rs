//! `rbee model download <repo> [<file>] [--revision R]`.

use anyhow::Result;
use rbee_protocol::{ModelDownload, Operation, DEFAULT_HIVE_ID};

use super::super::watch::{interrupted, watch};
use super::{check_names, Ctx};
use crate::cancel::Signals;
use crate::exit::Exit;

/// Download a model file into the hive's cache and print its local path.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Repo id, `org/name`
    repo: String,
    /// File inside the repo [default: every file of the revision]
    file: Option<String>,
    /// Branch, tag or commit [default: main]
    #[arg(long, short)]
    revision: Option<String>,
}

impl Args {
    fn operation(self) -> Result<Operation> {
        check_names(&self.repo, self.file.as_deref(), self.revision.as_deref())?;
        Ok(Operation::ModelDownload(ModelDownload {
            hive_id: DEFAULT_HIVE_ID.to_owned(),
            model: self.repo,
            file: self.file,
            revision: self.revision,
        }))
    }

    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let op = self.operation()?;
        ctx.ensure_hive().await?;
        let signals = Signals::install()?;
        let Some(created) = signals.race(ctx.client.create_job(&op)).await else {
            return Ok(interrupted());
        };
        let created = created?;
        ctx.note(&format!("📋 job {}", created.job_id));
        watch(ctx, &signals, &created.job_id, &created.sse_url).await
    }
}
