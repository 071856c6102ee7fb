//! What a job has going outside its own task: disk writes handed to blocking threads and helper
//! tasks (the heartbeat). Dropping the job's task cannot stop a blocking write that a pool thread
//! already runs, nor wait for a helper task's drop, so each one holds a [`Ticket`] and
//! [`Registry::cancel`](super::Registry::cancel) waits until none is left.
//!
//! The ticket is taken on the executor, in the job's own poll, *before* the work is handed on
//! ([`Outstanding::unblock`]): a write is counted from the moment it can happen. Once the job's
//! task is gone nothing can take a new ticket, so "dropped, then drained" means no byte follows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A job's count of outstanding work; cloning shares the count.
#[derive(Debug, Clone, Default)]
pub struct Outstanding(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    count: AtomicUsize,
    drained: event_listener::Event,
}

/// One unit of outstanding work; counted until dropped.
#[derive(Debug)]
#[must_use = "the work is counted only while the ticket lives"]
pub struct Ticket(Outstanding);

impl Outstanding {
    /// Counts one unit of work until the ticket drops.
    pub fn enter(&self) -> Ticket {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        Ticket(self.clone())
    }

    /// Runs `work` on a blocking thread, counted from now until it has returned (or was dropped
    /// unrun). Every disk write of a job goes through here.
    pub fn unblock<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> smol::Task<T> {
        let ticket = self.enter();
        smol::unblock(move || {
            let out = work();
            drop(ticket);
            out
        })
    }

    /// Units of work outstanding right now.
    pub fn count(&self) -> usize {
        self.0.count.load(Ordering::SeqCst)
    }

    /// Waits until nothing is outstanding.
    pub async fn drained(&self) {
        loop {
            if self.count() == 0 {
                return;
            }
            let listener = self.0.drained.listen();
            if self.count() == 0 {
                return;
            }
            listener.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.0 .0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0 .0.drained.notify(usize::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn drained_waits_for_work_counted_before_it_started() {
        smol::block_on(async {
            let out = Outstanding::default();
            let (tx, rx) = std::sync::mpsc::channel();
            // The blocking work sleeps before "writing": it is counted all the same.
            let task = out.unblock(move || {
                std::thread::sleep(Duration::from_millis(50));
                tx.send(()).expect("receiver");
            });
            drop(task);
            assert_eq!(out.count(), 1);
            out.drained().await;
            // Sent (it ran), or disconnected (dropped unrun): never still pending.
            let seen = rx.try_recv();
            assert_ne!(seen, Err(std::sync::mpsc::TryRecvError::Empty), "drained returned while the work was pending");
            assert_eq!(out.count(), 0);
        });
    }
}
