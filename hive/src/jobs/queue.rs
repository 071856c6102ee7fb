//! The cap on concurrent transfers (`--max-downloads`): a first-come, first-served queue of
//! slots. A job beyond the cap waits here with status `queued`: it narrates its place when it
//! enters and whenever its place changes, and sends heartbeats while it waits. Cancelling a
//! queued job drops its wait, which gives its place up at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_lite::future;
use rbee_protocol::Event;

use super::JobCtx;

/// Download slots, handed out in arrival order.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    state: Arc<Mutex<State>>,
    changed: Arc<event_listener::Event>,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

/// A held slot; dropping it lets the next job in.
#[derive(Debug)]
pub struct Slot {
    state: Arc<Mutex<State>>,
    changed: Arc<event_listener::Event>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).running -= 1;
        self.changed.notify(usize::MAX);
    }
}

/// A place in the queue; dropping it (a cancelled job) leaves the queue.
struct Place<'a> {
    slots: &'a Slots,
    ticket: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.slots.lock().waiting.retain(|&t| t != self.ticket);
        self.slots.changed.notify(usize::MAX);
    }
}

impl Slots {
    /// At most `max` (at least one) slots.
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self { max: max.max(1), state: Arc::default(), changed: Arc::new(event_listener::Event::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a slot, in arrival order. While waiting, the job stays `queued`: its place is
    /// narrated when it changes and a heartbeat goes out every `heartbeat`.
    pub async fn acquire(&self, ctx: &JobCtx, heartbeat: Duration) -> Slot {
        let place = {
            let mut state = self.lock();
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.waiting.push_back(ticket);
            Place { slots: self, ticket }
        };
        let mut shown = None;
        loop {
            let listener = self.changed.listen();
            let ahead = {
                let mut state = self.lock();
                let ahead = state.waiting.iter().position(|&t| t == place.ticket).unwrap_or(0);
                if ahead == 0 && state.running < self.max {
                    state.waiting.pop_front();
                    state.running += 1;
                    std::mem::forget(place);
                    return Slot { state: self.state.clone(), changed: self.changed.clone() };
                }
                ahead
            };
            if shown != Some(ahead) {
                shown = Some(ahead);
                ctx.log.push_queued(Event::narration(queued_line(ahead, self.max)));
            }
            let beat = async {
                smol::Timer::after(heartbeat).await;
                true
            };
            if future::or(
                async {
                    listener.await;
                    false
                },
                beat,
            )
            .await
            {
                let elapsed_secs = ctx.started.elapsed().as_secs();
                ctx.log.push_queued(Event::Heartbeat { message: queued_line(ahead, self.max), elapsed_secs });
            }
        }
    }
}

/// `⏸️  queued: place 2 in line (at most 8 downloads run at once, --max-downloads)`.
fn queued_line(ahead: usize, max: usize) -> String {
    format!("⏸️  queued: place {} in line (at most {max} downloads run at once, --max-downloads)", ahead + 1)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    use super::*;
    use crate::jobs::Outstanding;

    fn text(ctx: &JobCtx) -> String {
        format!("{:?}", ctx.log.since(0).0)
    }

    fn ctx() -> JobCtx {
        JobCtx {
            id: "job-x".into(),
            log: Arc::default(),
            started: Instant::now(),
            live: Arc::new(AtomicUsize::new(0)),
            outstanding: Outstanding::default(),
        }
    }

    #[test]
    fn waits_in_order_stays_queued_and_leaves_when_dropped() {
        smol::block_on(async {
            let slots = Slots::new(1);
            let (a, b, c) = (ctx(), ctx(), ctx());
            let first = slots.acquire(&a, Duration::from_secs(60)).await;
            let mut second = Box::pin(slots.acquire(&b, Duration::from_millis(20)));
            let mut third = Box::pin(slots.acquire(&c, Duration::from_secs(60)));
            assert!(future::poll_once(&mut second).await.is_none());
            assert!(future::poll_once(&mut third).await.is_none());
            smol::Timer::after(Duration::from_millis(60)).await;
            assert!(future::poll_once(&mut second).await.is_none());
            assert_eq!(b.log.status(), rbee_protocol::JobStatus::Queued);
            let events = text(&b);
            assert!(events.contains("place 1") && events.contains("Heartbeat"), "{events}");
            assert!(text(&c).contains("place 2"), "{}", text(&c));
            drop(second); // a cancelled job gives its place up
            assert!(text(&c).contains("place 2"));
            assert!(future::poll_once(&mut third).await.is_none());
            assert!(text(&c).contains("place 2"), "{}", text(&c));
            drop(first);
            let _third = third.await;
        });
    }
}
