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
