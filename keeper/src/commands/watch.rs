//! Running a job and watching it to its end, shared by every `model` verb and `job attach`:
//! render its events, turn the terminal event into an exit code and its result into stdout, and
//! cancel it on the hive when Ctrl+C is pressed.

use std::time::Duration;

use anyhow::{anyhow, Result};
use rbee_protocol::{Event, Operation};

use super::{print_json, Ctx};
use crate::client::{timeout, CancelReply};
use crate::exit::{Exit, JobFailed, StdoutClosed};
use crate::follow::follow;
use crate::render::{self, Mode, Renderer};
use crate::signals::Signals;

/// How long the hive gets to confirm a cancel.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// What a job's success prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// The local path (downloads): `✅ <path>`; `--json` shows the events.
    Path,
    /// The result (listings, removals): its lines; `--json` prints only the result's JSON.
    Result,
}

/// Submit `op` (starting the local hive if needed) and watch the job to its end.
pub(crate) async fn submit(ctx: &Ctx, op: &Operation, show: Show) -> Result<Exit> {
    ctx.ensure_hive().await?;
    let signals = Signals::install()?;
    let Some(created) = signals.race(ctx.client.create_job(op)).await else {
        return Ok(cancel(ctx, &signals, None).await);
    };
    let created = created?;
    ctx.note(&format!("📋 job {}", created.job_id));
    watch(ctx, &signals, &created.job_id, &created.sse_url, show).await
}

/// Stream job `job_id` until it ends or the user presses Ctrl+C.
pub(crate) async fn watch(ctx: &Ctx, signals: &Signals, job_id: &str, sse_url: &str, show: Show) -> Result<Exit> {
    let mode = if show == Show::Result && ctx.mode == Mode::Json { Mode::Quiet } else { ctx.mode };
    let mut renderer = Renderer::new(mode, job_id);
    let end = signals.race(follow(&ctx.client, job_id, sse_url, &mut renderer)).await;
    renderer.finish(end.is_none());
    match end {
        None => Ok(cancel(ctx, signals, Some(job_id)).await),
        Some(Err(e)) if e.is::<StdoutClosed>() => Ok(left_running(ctx, job_id)),
        Some(end) => conclude(end?, ctx.mode, job_id, show),
    }
}

/// Stdout was closed mid-job (`rbee --json model download … | head -2`): leave at once, as any
/// Unix tool whose pipe closed; the job goes on on the hive.
fn left_running(ctx: &Ctx, job_id: &str) -> Exit {
    let hive = hive_flag(ctx);
    render::warn(&format!("rbee: stdout was closed; job {job_id} keeps running on the hive"));
    render::warn(&format!(
        "rbee: follow it with `rbee job attach {job_id}{hive}`, or cancel it with `rbee job cancel {job_id}{hive}`"
    ));
    Exit::PipeClosed
}

/// ` --hive URL` when the user named a hive, for commands we suggest.
fn hive_flag(ctx: &Ctx) -> String {
    if let Some(remote) = &ctx.remote {
        return format!(" --hive {}", remote.flag());
    }
    if ctx.explicit_hive {
        format!(" --hive {}", ctx.client.base())
    } else {
        String::new()
    }
}

/// The Ctrl+C sequence, all of it: `🛑 Cancelling operation...`, DELETE the job once (2 s at most;
/// a second Ctrl+C leaves at once), `🛑 Operation cancelled by user`, exit 130. Before the hive
/// handed out a job id (`job_id` is `None`) there is nothing to cancel.
pub(crate) async fn cancel(ctx: &Ctx, signals: &Signals, job_id: Option<&str>) -> Exit {
    let Some(job_id) = job_id else {
        ctx.note("🛑 Operation cancelled by user");
        return Exit::Cancelled;
    };
    ctx.note("🛑 Cancelling operation...");
    let reply = signals.race(timeout(CANCEL_TIMEOUT, ctx.client.cancel(job_id))).await;
    let why = match reply {
        Some(Ok(CancelReply::Cancelled)) => {
            ctx.note("🛑 Operation cancelled by user");
            return Exit::Cancelled;
        }
        Some(Ok(CancelReply::AlreadyEnded(status))) => {
            let status = status.map_or("ended", |s| s.as_str());
            ctx.note(&format!("🛑 stopped watching; job {job_id} had already ended on the hive ({status})"));
            return Exit::Cancelled;
        }
        Some(Ok(CancelReply::NotFound)) => {
            ctx.note(&format!("🛑 stopped watching; the hive no longer knows job {job_id}"));
            return Exit::Cancelled;
        }
        Some(Err(err)) => format!("could not cancel job {job_id} on the hive: {err:#}"),
        None => format!("second Ctrl+C: left without waiting for the hive to cancel job {job_id}"),
    };
    let hive = hive_flag(ctx);
    render::warn(&format!("⚠️  {why}"));
    render::warn(&format!(
        "⚠️  the job may still be running on the hive; cancel it with `rbee job cancel {job_id}{hive}`"
    ));
    Exit::Cancelled
}

/// Report the terminal event: the path or result on stdout, or an error.
fn conclude(end: Event, mode: Mode, job_id: &str, show: Show) -> Result<Exit> {
    match end {
        Event::Done { message, path, result, lines } => {
            match (show, mode) {
                (Show::Path, Mode::Json) => {}
                (Show::Path, _) => {
                    let result = path.or(Some(message).filter(|m| !m.is_empty())).unwrap_or_else(|| "done".into());
                    if mode == Mode::Quiet {
                        outln!("{result}");
                    } else {
                        outln!("✅ {result}");
                    }
                }
                (Show::Result, Mode::Json) => {
                    print_json(&result.unwrap_or_else(|| serde_json::json!({ "message": message })))?;
                }
                (Show::Result, _) => {
                    let message = Some(message).filter(|m| !m.is_empty());
                    for line in message.into_iter().chain(lines) {
                        outln!("{}", rbee_protocol::text::one_line(&line));
                    }
                }
            }
            Ok(Exit::Ok)
        }
        Event::Error { message } => Err(JobFailed(message).into()),
        Event::Cancelled { message } => {
            Err(JobFailed(format!("job {job_id} was cancelled on the hive: {message}")).into())
        }
        other => Err(anyhow!("job {job_id} ended with an unexpected `{}` event", other.name())),
    }
}
