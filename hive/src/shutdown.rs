//! Stopping on SIGINT and SIGTERM, gracefully: every job is cancelled the way `DELETE` cancels it
//! (its partial download kept for a resume, its `cancelled` event saying
//! [`rbee_protocol::SHUTTING_DOWN`], its end line in the log), the streams get a moment to carry
//! that event to their keepers, the hive logs its own end and `run` returns 0. A second signal
//! meanwhile exits at once.
//!
//! The `ctrlc` handler only pushes `()` into an async-channel, as smol's `examples/ctrl-c.rs`
//! does; the server races its accept loop against [`on_signal`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_channel::Receiver;

use crate::Hive;

/// How long the streams get to deliver the `cancelled` events (they are in the logs already;
/// writing them to a socket takes far less).
const GRACE: Duration = Duration::from_millis(500);

/// The exit code of a second signal during shutdown: what a shell reports for SIGINT.
const FORCED: i32 = 130;

/// Installs the process-wide SIGINT / SIGTERM handler; its signals arrive on the channel (a
/// closed one, with a warning, when a handler is installed already: then signals kill the hive).
pub(crate) fn signals() -> Receiver<()> {
    let (tx, rx) = async_channel::unbounded();
    let installed = ctrlc::set_handler(move || {
        tx.try_send(()).ok();
    });
    if let Err(e) = installed.context("installing the SIGINT / SIGTERM handler") {
        log::warn!("{e:#}: a signal will stop the hive without cancelling its jobs first");
    }
    rx
}

/// Waits for the first signal, then stops `hive`'s jobs; returns when the hive may exit.
pub(crate) async fn on_signal(hive: Arc<Hive>, signals: Receiver<()>) {
    if signals.recv().await.is_err() {
        return std::future::pending().await; // no handler: the hive runs until killed
    }
    let running = hive.registry.running();
    log::info!("signal received: shutting down, cancelling {running} running job(s) (a second signal exits at once)");
    // A thread of its own: the executor may be busy cancelling when the second signal comes.
    std::thread::spawn(move || {
        if signals.recv_blocking().is_ok() {
            log::warn!("second signal: exiting at once, without waiting for the jobs");
            std::process::exit(FORCED);
        }
    });
    let cancelled = hive.registry.cancel_all().await;
    smol::Timer::after(GRACE).await;
    log::info!("rbee-hive stopped: {cancelled} job(s) cancelled, their partial downloads kept for a resume");
}
