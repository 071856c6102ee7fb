//! The heartbeat: its own task, emitting "still downloading…" at an interval until told to stop
//! through an async-channel (or until dropped with its job).

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
    /// Starts beating `message` every `interval` into the job's log.
    pub fn start(ctx: &JobCtx, interval: Duration, message: String) -> Self {
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let log = ctx.log.clone();
        let started = ctx.started;
        // Dropped in this order when the task ends or is dropped: uncounted from `live_tasks`
        // first, then from the job's outstanding work that a cancel waits for.
        let guards = (TaskGuard::new(&ctx.live), ctx.outstanding.enter());
        let task = smol::spawn(async move {
            let _guards = guards;
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
            let beat = Heartbeat::start(&ctx, Duration::from_millis(2), "beat".into());
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
            let beat = Heartbeat::start(&ctx, Duration::from_millis(2), "beat".into());
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
}
