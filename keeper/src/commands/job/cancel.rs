//! `rbee job cancel <id>`.

use anyhow::{bail, Result};
use serde_json::json;

use super::Ctx;
use crate::client::CancelReply;
use crate::commands::print_json;
use crate::exit::Exit;

/// Cancel a running job (its partial download is kept for a later resume).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Job id, `job-…`
    id: String,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let id = &self.id;
        let status = match ctx.client.cancel(id).await? {
            CancelReply::NotFound => bail!("no job {id}"),
            CancelReply::Cancelled => None,
            CancelReply::AlreadyEnded(status) => Some(status.map_or("ended", |s| s.as_str())),
        };
        if ctx.json() {
            return print_json(&json!({ "job_id": id, "cancelled": status.is_none(), "status": status }));
        }
        match status {
            None => outln!("🛑 cancelled {id}"),
            Some(status) => outln!("job {id} had already ended: {status}"),
        }
        Ok(Exit::Ok)
    }
}
