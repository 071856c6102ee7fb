//! `rbee hive status`.

use anyhow::Result;

use super::Ctx;
use crate::client::Health;
use crate::commands::print_json;
use crate::exit::Exit;
use crate::settings::{self, HfSettings};

/// Show whether the hive answers, with its version, pid and job counts.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        if let Some(remote) = &ctx.remote {
            return super::remote::status(ctx, remote).await;
        }
        let health = ctx.client.health().await?; // its deadlines: client.rs
        if ctx.json() {
            return print_json(&health);
        }
        outln!("{}", line(ctx.client.base(), &health));
        if !ctx.explicit_hive() {
            let diffs = HfSettings::from_env().differences(&health);
            settings::warning(ctx.client.base(), health.pid, &diffs).iter().for_each(|l| crate::render::warn(l));
        }
        Ok(Exit::Ok)
    }
}

/// `🐝 hive at URL: ok (version 0.1.0, pid 42, 1 running jobs, 3 live tasks)`.
pub(crate) fn line(base: &str, h: &Health) -> String {
    let status = rbee_protocol::text::sanitize(&h.status);
    if h.version.is_empty() {
        return format!("🐝 hive at {base}: {status} (it answers as rbee's hive does, without details)");
    }
    let pid = h.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
    format!(
        "🐝 hive at {base}: {} (version {}, pid {pid}, {} running jobs, {} live tasks)",
        status,
        rbee_protocol::text::sanitize(&h.version),
        h.running_jobs,
        h.live_tasks
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line() {
        let h: Health =
            serde_json::from_str(r#"{"status":"ok","version":"0.1.0","pid":42,"running_jobs":1,"live_tasks":3}"#)
                .unwrap();
        assert_eq!(
            line("http://h:1", &h),
            "🐝 hive at http://h:1: ok (version 0.1.0, pid 42, 1 running jobs, 3 live tasks)"
        );
    }
}
