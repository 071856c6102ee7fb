//! `rbee job status <id>`.

use std::fmt::Write;

use anyhow::Result;
use rbee_protocol::text::sanitize;
use rbee_protocol::JobInfo;

use super::Ctx;
use crate::commands::print_json;
use crate::exit::Exit;

/// Show one job's status.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Job id, `job-…`
    id: String,
}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let info = ctx.client.job(&self.id).await?;
        if ctx.json() {
            return print_json(&info);
        }
        outln!("{}", line(&info));
        Ok(Exit::Ok)
    }
}

/// `job-1 running: download org/m/f@main (12 events, 3s)` plus the error of a failed job.
pub(crate) fn line(info: &JobInfo) -> String {
    let mut text = format!(
        "{} {}: {} ({} events, {}s)",
        sanitize(&info.job_id),
        info.status.as_str(),
        sanitize(&info.operation),
        info.events,
        info.age_secs
    );
    if let Some(error) = &info.error {
        write!(text, "\n  error: {}", sanitize(error)).expect("writing to a String cannot fail");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_protocol::JobStatus;

    #[test]
    fn failed_jobs_show_their_error() {
        let info = JobInfo {
            job_id: "job-1".into(),
            status: JobStatus::Failed,
            operation: "download org/m/f@main".into(),
            events: 4,
            age_secs: 9,
            error: Some("404".into()),
        };
        assert_eq!(line(&info), "job-1 failed: download org/m/f@main (4 events, 9s)\n  error: 404");
    }
}
