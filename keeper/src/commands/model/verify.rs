//! `rbee model verify [ORG/REPO]`: re-hash cached blobs on the hive, like `hf cache verify`.

use anyhow::Result;
use rbee_protocol::{ModelRef, ModelVerify, Operation};

use super::super::watch::{submit, Show};
use super::{checked, Ctx};
use crate::exit::{Exit, UsageError};

/// Re-hash every cached blob (or those of one repo) against its name: sha256 for LFS files, git's
/// blob sha1 for the rest. A mismatch is moved to `<cache>/.rbee-quarantine/` with a record of its
/// snapshot links (never deleted), and the command exits 1.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// `org/repo` (or a pasted hub URL of it); every cached repo when absent
    #[arg(value_name = "MODEL")]
    model: Option<String>,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let usage = |e: rbee_protocol::validate::InvalidName| UsageError(e.to_string());
        let id = match &self.model {
            Some(m) => {
                let model = match ModelRef::parse_url(m).map_err(usage)? {
                    Some((model, _)) => model,
                    None => ModelRef::parse(m).map_err(usage)?,
                };
                Some(model.repo)
            }
            None => None,
        };
        let op = checked(Operation::ModelVerify(ModelVerify { hive_id: ctx.hive_id().to_owned(), id }))?;
        submit(ctx, &op, Show::Result).await
    }
}
