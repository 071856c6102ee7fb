//! `rbee model download|dl [MODEL] [FILE] [--revision R] [--all | --include GLOB… --exclude GLOB…]
//! [--dry-run] [--max-rate RATE] [--connections N]`; MODEL may be a pasted hub URL.

use anyhow::Result;
use rbee_protocol::{ModelDownload, ModelList, Operation};

use super::super::watch::{submit, Show};
use super::{checked, Ctx, ModelArg};
use crate::exit::{Exit, UsageError};
use crate::follow::follow;
use crate::render::{Mode, Renderer};

/// Download a model into the hive's cache and print its local path. Without a file, the hive
/// picks one GGUF (Q4_K_M first, as rbee does); `--all` downloads every file instead.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    model: ModelArg,
    /// Branch, tag or commit [default: main]
    #[arg(long, short)]
    revision: Option<String>,
    /// Every file of the revision (MODEL must be a bare `org/repo`)
    #[arg(long)]
    all: bool,
    /// Only files matching these patterns (fnmatch, as `hf download`: `*` matches `/` too)
    #[arg(long, num_args = 1.., value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out files matching these patterns
    #[arg(long, num_args = 1.., value_name = "GLOB")]
    exclude: Vec<String>,
    /// List what would be fetched, the sizes and what is cached; download nothing
    #[arg(long)]
    dry_run: bool,
    /// Cap this download's bandwidth, bytes/s with K/M/G (1024-based): `20M`
    #[arg(long, value_name = "RATE", value_parser = rbee_protocol::text::parse_rate)]
    max_rate: Option<u64>,
    /// Most upstream connections the hive may use for this download [default: the hive's
    /// `--max-parts`, 16]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    connections: Option<u32>,
    /// Answer from the hive's cache alone, never asking the hub (as huggingface_hub with
    /// HF_HUB_OFFLINE=1)
    #[arg(long, env = "HF_HUB_OFFLINE", action = clap::ArgAction::SetTrue, value_parser = crate::settings::truthy)]
    offline: bool,
}

/// Where rbee's own hive put `model` (its stream ends in a bare `[DONE]`): the `path` of the
/// model with that id in a `model_list` job's result; `None` when the hive does not say.
pub(crate) async fn path_on_rbee_hive(ctx: &Ctx, model: &str) -> Option<String> {
    let op = Operation::ModelList(ModelList { hive_id: ctx.hive_id().to_owned() });
    let created = ctx.client.create_job(&op).await.ok()?;
    let mut renderer = Renderer::new(Mode::Quiet, &created.job_id);
    follow(&ctx.client, &created.job_id, &created.sse_url, &mut renderer).await.ok()?;
    let data = renderer.take_data();
    let models = data.iter().filter(|(a, _)| a == "model_list").filter_map(|(_, p)| p.get("models")?.as_array());
    let found = models.flatten().find(|m| m.get("id").and_then(serde_json::Value::as_str) == Some(model))?;
    found.get("path")?.as_str().map(str::to_owned)
}

impl Args {
    fn operation(&self, hive_id: &str) -> Result<Operation, UsageError> {
        let (model, url_revision) = self.model.model_ref_and_revision()?;
        let patterns = !self.include.is_empty() || !self.exclude.is_empty();
        if (self.all || patterns) && model.file.is_some() {
            let flag = if self.all { "--all" } else { "--include/--exclude" };
            return Err(UsageError(format!("{flag} selects files of a repo: give `{}` without a file", model.repo)));
        }
        let mut d = ModelDownload::new(&model);
        d.hive_id = hive_id.to_owned();
        d.revision = match (&self.revision, url_revision) {
            (Some(r), Some(u)) if *r != u => {
                return Err(UsageError(format!("the URL names revision `{u}` but --revision says `{r}`")))
            }
            (r, u) => r.clone().or(u),
        };
        d.all = self.all;
        d.include.clone_from(&self.include);
        d.exclude.clone_from(&self.exclude);
        d.dry_run = self.dry_run;
        d.max_rate = self.max_rate;
        d.connections = self.connections;
        d.offline = self.offline;
        checked(Operation::ModelDownload(d))
    }

    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let op = self.operation(ctx.hive_id())?;
        submit(ctx, &op, if self.dry_run { Show::Result } else { Show::Path }).await
    }
}
