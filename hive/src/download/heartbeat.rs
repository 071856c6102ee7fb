//! The heartbeat: its own task, emitting "still downloading…" at an interval until told to stop
//! through an async-channel (or until dropped with its job). It claims a download only once the
//! job has logged progress: before that (asking the hub, waiting for a lock, answering from the
//! cache) it says that nothing is being downloaded yet.

use std::time::Duration;

use futures_lite::future;
use rbee_protocol::Event;

use crate::jobs::{JobCtx, TaskGuard};

/// A running heartbeat task. Dropping it (with the job) cancels it; [`Heartbeat::stop`] ends it
/// cleanly and waits until it is gone.
pub struct Heartbeat {
    stop: async_channel::Sender<()>,
    task: smol::Task<()>,
}

impl Heartbeat {
    /// Starts beating `message` every `interval` into the job's log (`waiting` until the job
    /// has logged progress).
    pub fn start(ctx: &JobCtx, interval: Duration, message: String, waiting: String) -> Self {
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let log = ctx.log.clone();
        let started = ctx.started;
        // Dropped in this order when the task ends or is dropped: uncounted from `live_tasks`
        // first, then from the job's outstanding work that a cancel waits for.
        let guards = (TaskGuard::new(&ctx.live), ctx.outstanding.enter());
        let task = smol::spawn(async move {
            let _guards = guards;
            let (mut seen, mut downloading) = (0, false);
            loop {
                let tick = async {
                    smol::Timer::after(interval).await;
                    true
                };
                if !future::or(
                    async {
                        let _ = stopped.recv().await;
                        false
                    },
                    tick,
                )
                .await
                {
                    return;
                }
                if !downloading {
                    let (news, _) = log.since(seen);
                    seen = news.last().map_or(seen, |(seq, _)| *seq);
                    downloading = news.iter().any(|(_, e)| matches!(e, Event::Progress { .. }));
                }
                let message = if downloading { &message } else { &waiting };
                let elapsed_secs = started.elapsed().as_secs();
                log.push(Event::Heartbeat { message: message.clone(), elapsed_secs });
            }
        });
        Self { stop, task }
    }

    /// Signals the task to stop and waits until it has.
    pub async fn stop(self) {
        self.stop.close();
        self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::jobs::Outstanding;

    /// A job context whose log has no terminal event, so nothing but `stop` can end the beats.
    fn ctx() -> JobCtx {
        JobCtx {
            id: "job-test".into(),
            log: Arc::default(),
            started: Instant::now(),
            live: Arc::default(),
            outstanding: Outstanding::default(),
        }
    }

    #[test]
    fn no_beat_after_stop_returns_and_nothing_left_running() {
        smol::block_on(async {
            let ctx = ctx();
            let beat = Heartbeat::start(&ctx, Duration::from_millis(2), "beat".into(), "wait".into());
            assert_eq!((ctx.live.load(std::sync::atomic::Ordering::SeqCst), ctx.outstanding.count()), (1, 1));
            while ctx.log.len() < 3 {
                smol::Timer::after(Duration::from_millis(1)).await;
            }
            beat.stop().await;
            let beats = ctx.log.len();
            assert_eq!((ctx.live.load(std::sync::atomic::Ordering::SeqCst), ctx.outstanding.count()), (0, 0));
            // Twenty-five intervals later the log (which would take any beat) has not grown.
            smol::Timer::after(Duration::from_millis(50)).await;
            assert_eq!(ctx.log.len(), beats, "a heartbeat after `stop` returned");
            assert!(!ctx.log.status().is_final(), "the log must not be closed by a terminal event");
        });
    }

    #[test]
    fn a_dropped_heartbeat_is_drained_and_beats_no_more() {
        smol::block_on(async {
            let ctx = ctx();
            let beat = Heartbeat::start(&ctx, Duration::from_millis(2), "beat".into(), "wait".into());
            while ctx.log.is_empty() {
                smol::Timer::after(Duration::from_millis(1)).await;
            }
            drop(beat);
            ctx.outstanding.drained().await;
            let beats = ctx.log.len();
            assert_eq!(ctx.live.load(std::sync::atomic::Ordering::SeqCst), 0);
            smol::Timer::after(Duration::from_millis(50)).await;
            assert_eq!(ctx.log.len(), beats, "a heartbeat after the drop drained");
        });
    }

    #[test]
    fn no_beat_claims_a_download_before_progress() {
        smol::block_on(async {
            let ctx = ctx();
            let beat = Heartbeat::start(&ctx, Duration::from_millis(2), "beat".into(), "wait".into());
            while ctx.log.len() < 3 {
                smol::Timer::after(Duration::from_millis(1)).await;
            }
            ctx.log.push(Event::Progress { file: "m".into(), bytes: 1, total: None, rate: 0.0, resumed_from: 0 });
            let mark = ctx.log.len();
            while ctx.log.len() < mark + 3 {
                smol::Timer::after(Duration::from_millis(1)).await;
            }
            beat.stop().await;
            let said: Vec<String> = ctx
                .log
                .since(0)
                .0
                .into_iter()
                .filter_map(|(_, e)| match e {
                    Event::Heartbeat { message, .. } => Some(message),
                    _ => None,
                })
                .collect();
            let first_beat = said.iter().position(|m| m == "beat").expect("a beat after progress");
            assert!(first_beat >= 3 && said[..first_beat].iter().all(|m| m == "wait"), "{said:?}");
            assert!(said[first_beat..].iter().all(|m| m == "beat"), "{said:?}");
        });
    }
}
