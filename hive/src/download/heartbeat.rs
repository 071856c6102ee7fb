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
        let guard = TaskGuard::new(&ctx.live);
        let task = smol::spawn(async move {
            let _guard = guard;
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
