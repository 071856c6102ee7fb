//! Running a job and watching it to its end, shared by every `model` verb and `job attach`:
//! render its events, turn the terminal event into an exit code and its result into stdout, and
//! cancel it on the hive when Ctrl+C is pressed.

use std::time::Duration;

use anyhow::{anyhow, Result};
use rbee_protocol::{Event, Operation};
use serde_json::{json, Value};

use super::model::{download, list};
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
    let model = match op {
        Operation::ModelDownload(d) => Some(d.model.as_str()),
        _ => None,
    };
    let job = Job { id: &created.job_id, sse_url: &created.sse_url, show, model, ctrl_c: CtrlC::Cancels };
    watch_job(ctx, &signals, &job).await
}

/// A job to watch: what its success shows, and (downloads) the model whose path to ask rbee's
/// hive for when the stream ends in a bare `[DONE]`.
struct Job<'a> {
    id: &'a str,
    sse_url: &'a str,
    show: Show,
    model: Option<&'a str>,
    ctrl_c: CtrlC,
}

/// What Ctrl+C does to a watched job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CtrlC {
    /// Cancel it on the hive (`model` verbs, `job attach --cancel`).
    Cancels,
    /// Stop watching; it goes on on the hive (`job attach`).
    Detaches,
}

/// Stream job `job_id` until it ends or the user presses Ctrl+C, which does `ctrl_c`.
pub(crate) async fn watch_with(
    ctx: &Ctx,
    signals: &Signals,
    (job_id, sse_url): (&str, &str),
    show: Show,
    ctrl_c: CtrlC,
) -> Result<Exit> {
    watch_job(ctx, signals, &Job { id: job_id, sse_url, show, model: None, ctrl_c }).await
}

async fn watch_job(ctx: &Ctx, signals: &Signals, job: &Job<'_>) -> Result<Exit> {
    let (job_id, show, ctrl_c) = (job.id, job.show, job.ctrl_c);
    let mode = if show == Show::Result && ctx.mode == Mode::Json { Mode::Quiet } else { ctx.mode };
    let mut renderer = Renderer::new(mode, job_id);
    let end = signals.race(follow(&ctx.client, job_id, job.sse_url, &mut renderer)).await;
    let data = renderer.take_data();
    renderer.finish(end.is_none());
    match end {
        None if ctrl_c == CtrlC::Detaches => Ok(detach(ctx, job_id)),
        None => Ok(cancel(ctx, signals, Some(job_id)).await),
        Some(Err(e)) if e.is::<StdoutClosed>() => Ok(left_running(ctx, job_id)),
        Some(end) => {
            let end = match (end?, job.model) {
                (Event::Done { message, path: None, result, lines }, Some(model)) if message.is_empty() => {
                    let path = signals.race(download::path_on_rbee_hive(ctx, model)).await.flatten();
                    Event::Done { message: model.to_owned(), path, result, lines }
                }
                (end, _) => end,
            };
            conclude(ctx, end, data, job_id, show)
        }
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

/// Ctrl+C while attached: stop watching, leave the job running, say how to cancel it (exit 130).
pub(crate) fn detach(ctx: &Ctx, job_id: &str) -> Exit {
    let hive = hive_flag(ctx);
    render::warn(&format!("🛑 stopped watching job {job_id}; still running: rbee job cancel {job_id}{hive}"));
    Exit::Cancelled
}

/// ` --hive URL` when the user named a hive, for commands we suggest.
fn hive_flag(ctx: &Ctx) -> String {
    if let Some(remote) = &ctx.remote {
        return format!(" --hive {}", remote.flag());
    }
    if ctx.explicit_hive() {
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

/// Report the terminal event: the path or result on stdout, or an error. `data`: the results
/// rbee's hive sent along the way.
fn conclude(ctx: &Ctx, end: Event, data: Vec<(String, Value)>, job_id: &str, show: Show) -> Result<Exit> {
    let mode = ctx.mode;
    match end {
        Event::Done { message, path, result, lines } => {
            match (show, mode) {
                (Show::Path, Mode::Json) => {}
                (Show::Path, _) => {
                    data.iter().for_each(|d| ctx.note(&list::data_line(d)));
                    let result = path.or(Some(message).filter(|m| !m.is_empty())).unwrap_or_else(|| "done".into());
                    if mode == Mode::Quiet {
                        outln!("{result}");
                    } else {
                        outln!("✅ {result}");
                    }
                }
                (Show::Result, Mode::Json) => {
                    let result =
                        result.or_else(|| list::data_json(data)).unwrap_or_else(|| json!({ "message": message }));
                    print_json(&result)?;
                }
                (Show::Result, _) => {
                    let message = Some(message).filter(|m| !m.is_empty());
                    for line in message.into_iter().chain(lines).chain(list::data_lines(&data)) {
                        outln!("{line}");
                    }
                }
            }
            Ok(Exit::Ok)
        }
        Event::Error { message } => Err(JobFailed(message).into()),
        Event::Cancelled { message } if message == rbee_protocol::SHUTTING_DOWN => {
            Err(JobFailed(format!("cancelled: {message}")).into())
        }
        Event::Cancelled { message } => {
            Err(JobFailed(format!("job {job_id} was cancelled on the hive: {message}")).into())
        }
        other => Err(anyhow!("job {job_id} ended with an unexpected `{}` event", other.name())),
    }
}
