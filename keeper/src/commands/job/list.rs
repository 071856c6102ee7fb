//! `rbee job list`.

use std::fmt::Write;

use anyhow::Result;
use rbee_protocol::text::sanitize;
use rbee_protocol::JobInfo;

use super::Ctx;
use crate::commands::print_json;
use crate::exit::Exit;

/// List the hive's jobs with their status.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

impl Args {
    pub(crate) async fn execute(self, ctx: &Ctx) -> Result<Exit> {
        let jobs = ctx.client.jobs().await?;
        if ctx.json() {
            return print_json(&jobs);
        }
        for line in table(&jobs).lines() {
            outln!("{line}");
        }
        Ok(Exit::Ok)
    }
}

/// One aligned row per job under a header, or `no jobs`.
pub(crate) fn table(jobs: &[JobInfo]) -> String {
    if jobs.is_empty() {
        return "no jobs\n".to_owned();
    }
    let ids: Vec<_> = jobs.iter().map(|j| sanitize(&j.job_id)).collect();
    let width = ids.iter().map(|id| id.chars().count()).max().unwrap_or(0).max(3);
    let mut out = format!("{:<width$}  {:<9}  {:>6}  {:>6}  OPERATION\n", "JOB", "STATUS", "AGE", "EVENTS");
    for (j, id) in jobs.iter().zip(ids) {
        let age = format!("{}s", j.age_secs);
        let (status, op) = (j.status.as_str(), sanitize(&j.operation));
        let row = format!("{id:<width$}  {status:<9}  {age:>6}  {:>6}  {op}", j.events);
        writeln!(out, "{}", row.trim_end()).ok();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_protocol::JobStatus;

    #[test]
    fn rows_line_up() {
        let job = JobInfo {
            job_id: "job-1".into(),
            status: JobStatus::Running,
            operation: "download org/m/f@main".into(),
            events: 12,
            age_secs: 3,
            error: None,
        };
        let text = table(std::slice::from_ref(&job));
        assert_eq!(
            text,
            "JOB    STATUS        AGE  EVENTS  OPERATION\njob-1  running        3s      12  download org/m/f@main\n"
        );
        assert_eq!(table(&[]), "no jobs\n");
        let evil = JobInfo { job_id: "j\u{202e}".into(), operation: "op\u{1b}]52;c;eA==\u{7}".into(), ..job };
        assert!(table(&[evil]).ends_with("j\\u{202e}  running        3s      12  op\\u{1b}]52;c;eA==\\u{7}\n"));
    }
}
