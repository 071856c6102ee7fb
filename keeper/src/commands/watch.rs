//! Watching a job to its end, shared by `model download` and `job attach`: render its events,
//! turn the terminal event into an exit code, and cancel it on the hive when Ctrl+C is pressed.

use std::time::Duration;

use anyhow::{anyhow, Result};
use rbee_protocol::Event;

use super::Ctx;
use crate::cancel::Signals;
use crate::client::{timeout, CancelReply};
use crate::exit::{Exit, JobFailed};
use crate::follow::follow;
use crate::render::{Mode, Renderer};

/// How long the hive gets to confirm a cancel.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// Stream job `job_id` until it ends or the user presses Ctrl+C.
pub(crate) async fn watch(ctx: &Ctx, signals: &Signals, job_id: &str, sse_url: &str) -> Result<Exit> {
    let mut renderer = Renderer::new(ctx.mode, job_id);
    let end = signals.race(follow(&ctx.client, job_id, sse_url, &mut renderer)).await;
    renderer.finish(end.is_none());
    match end {
        None => Ok(cancel(ctx, signals, job_id).await),
        Some(end) => conclude(end?, ctx.mode, job_id),
    }
}

/// The user pressed Ctrl+C: DELETE the job once (2 s at most); a second Ctrl+C leaves at once.
pub(crate) async fn cancel(ctx: &Ctx, signals: &Signals, job_id: &str) -> Exit {
    eprintln!("🛑 Cancelling operation...");
    let reply = signals.race(timeout(CANCEL_TIMEOUT, ctx.client.cancel(job_id))).await;
    let why = match reply {
        Some(Ok(CancelReply::Cancelled)) => {
            eprintln!("🛑 Operation cancelled by user");
            return Exit::Cancelled;
        }
        Some(Ok(CancelReply::AlreadyEnded(status))) => {
            let status = status.map_or("ended", |s| s.as_str());
            eprintln!("🛑 stopped watching; job {job_id} had already ended on the hive ({status})");
            return Exit::Cancelled;
        }
        Some(Ok(CancelReply::NotFound)) => {
            eprintln!("🛑 stopped watching; the hive no longer knows job {job_id}");
            return Exit::Cancelled;
        }
        Some(Err(err)) => format!("could not cancel job {job_id} on the hive: {err:#}"),
        None => format!("second Ctrl+C: left without waiting for the hive to cancel job {job_id}"),
    };
    let hive = if ctx.explicit_hive { format!(" --hive {}", ctx.client.base()) } else { String::new() };
    eprintln!("⚠️  {why}");
    eprintln!("⚠️  the job may still be running on the hive; cancel it with `rbee job cancel {job_id}{hive}`");
    Exit::Cancelled
}

/// Ctrl+C before the hive handed out a job id.
pub(crate) fn interrupted() -> Exit {
    eprintln!("🛑 Operation cancelled by user");
    Exit::Cancelled
}

/// Report the terminal event: the result path on stdout, or an error.
fn conclude(end: Event, mode: Mode, job_id: &str) -> Result<Exit> {
    match end {
        Event::Done { message, path, .. } => {
            let result = path.unwrap_or(message);
            match mode {
                Mode::Json => {}
                Mode::Quiet => println!("{result}"),
                Mode::Bar | Mode::Plain => println!("✅ {result}"),
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
