//! `rbee model rm <repo> [<file>] [--partial]`.

use anyhow::Result;
use rbee_protocol::RemoveReport;

use super::{check_names, Ctx};
use crate::commands::print_json;
use crate::exit::Exit;
use crate::render::format;

/// Remove a cached model, one of its files, or only its unfinished downloads.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Repo id, `org/name`
    repo: String,
    /// Only this file [default: the whole repo]
    file: Option<String>,
    /// Only unfinished (`.incomplete`) downloads
    #[arg(long)]
    partial: bool,
    /// Cancel a job that is downloading it, instead of refusing
    #[arg(long)]
    force: bool,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        check_names(&self.repo, self.file.as_deref(), None)?;
        ctx.ensure_hive().await?;
        let report = ctx.client.remove_model(&self.repo, self.file.as_deref(), self.partial, self.force).await?;
        if ctx.json() {
            return print_json(&report);
        }
        let what = self.file.map_or_else(|| self.repo.clone(), |f| format!("{}/{f}", self.repo));
        println!("{}", summary(&what, &report));
        Ok(Exit::Ok)
    }
}

fn plural(n: u64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// `🗑️  removed org/m: 1 link, 1 blob, 0 partials (2.0 MiB freed)`.
pub(crate) fn summary(what: &str, r: &RemoveReport) -> String {
    let (links, blobs, partials) = (plural(r.links, "link"), plural(r.blobs, "blob"), plural(r.partials, "partial"));
    format!("🗑️  removed {what}: {links}, {blobs}, {partials} ({} freed)", format::bytes(r.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts() {
        let r = RemoveReport { links: 1, blobs: 2, partials: 0, bytes: 2 << 20 };
        assert_eq!(summary("org/m", &r), "🗑️  removed org/m: 1 link, 2 blobs, 0 partials (2.0 MiB freed)");
    }
}
