//! Ctrl+C as an async channel, exactly as smol's `examples/ctrl-c.rs` does it.
//!
//! The `ctrlc` handler only pushes `()` into an `async-channel`; async code races its work
//! against [`Signals::race`], so a signal interrupts a stream read at once.

use std::future::Future;

use anyhow::{Context, Result};
use async_channel::Receiver;
use futures_lite::future;

/// Ctrl+C (and SIGTERM) presses, delivered on a channel.
pub(crate) struct Signals {
    presses: Receiver<()>,
}

impl Signals {
    /// Install the process-wide handler. Call it once, before the work it should interrupt.
    pub(crate) fn install() -> Result<Self> {
        let (tx, presses) = async_channel::unbounded();
        ctrlc::set_handler(move || {
            tx.try_send(()).ok();
        })
        .context("installing the Ctrl+C handler")?;
        Ok(Self { presses })
    }

    /// A channel fed by hand instead of by the OS (tests).
    #[cfg(test)]
    pub(crate) fn manual() -> (async_channel::Sender<()>, Self) {
        let (tx, presses) = async_channel::unbounded();
        (tx, Self { presses })
    }

    /// Run `work` until it finishes (`Some`) or Ctrl+C is pressed (`None`).
    pub(crate) async fn race<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let pressed = async {
            self.presses.recv().await.ok();
            None
        };
        future::or(async { Some(work.await) }, pressed).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_wins_without_a_press() {
        let (_tx, signals) = Signals::manual();
        assert_eq!(smol::block_on(signals.race(async { 7 })), Some(7));
    }

    #[test]
    fn a_press_interrupts_pending_work() {
        let (tx, signals) = Signals::manual();
        tx.try_send(()).unwrap();
        assert_eq!(smol::block_on(signals.race(future::pending::<u8>())), None);
    }
}
