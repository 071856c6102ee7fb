//! Jobs: the registry that owns each job's `smol::Task`, and each job's event log.
//!
//! Cancelling a job drops its task; every long loop in a job awaits between units of work, so
//! the drop takes effect within one chunk.

pub mod feed;
mod log;
mod outstanding;
mod queue;
mod registry;

pub use feed::Feed;
pub use log::EventLog;
pub use outstanding::{Outstanding, Ticket};
pub use queue::{Slot, Slots};
pub use registry::{CancelError, JobCtx, Registry, Retention, TaskGuard};

/// What a waiter started on another thread by `wait` returns once `wake` ran here, 20 ms later
/// (long enough for the waiter to be parked): the wake-up test of the feed and of a job's log.
#[cfg(test)]
fn woken<T, F>(shared: T, wait: impl FnOnce(T) -> F + Send + 'static, wake: impl FnOnce()) -> F::Output
where
    T: Send + 'static,
    F: std::future::Future,
    F::Output: Send + 'static,
{
    let waiter = std::thread::spawn(move || smol::block_on(wait(shared)));
    std::thread::sleep(std::time::Duration::from_millis(20));
    wake();
    waiter.join().unwrap()
}
