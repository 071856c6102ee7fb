//! A job's event log: every event it emitted, in order, for live and late subscribers.
//!
//! The log enforces the stream contract: once a terminal event is in, nothing else gets in.

use std::sync::{Arc, Mutex};

use rbee_protocol::{Event, JobId, JobStatus};

use super::feed::{Feed, Item};

/// Events of one job, numbered from 1 (the SSE `id:`).
#[derive(Debug, Default)]
pub struct EventLog {
    inner: Mutex<Inner>,
    changed: event_listener::Event,
    /// Where each event is published too: the hive-wide feed, under the job's id.
    tap: Option<(Arc<Feed>, JobId)>,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<Event>,
    status: Option<JobStatus>,
}

impl EventLog {
    /// A log whose events also enter `feed` as `job`'s.
    #[must_use]
    pub fn tapped(feed: Arc<Feed>, job: JobId) -> Self {
        Self { tap: Some((feed, job)), ..Self::default() }
    }

    /// Appends `event`; returns `false` (and drops it) when the job already ended. (rbee's end
    /// marker is not an event: each stream dialect writes it after the terminal event.)
    pub fn push(&self, event: Event) -> bool {
        {
            let mut inner = self.inner.lock().expect("event log poisoned");
            if inner.status.is_some_and(JobStatus::is_final) {
                return false;
            }
            if event.is_terminal() {
                inner.status = Some(final_status(&event));
            } else if inner.status.is_none() {
                inner.status = Some(JobStatus::Running);
            }
            if let Some((feed, job)) = &self.tap {
                // Under the log's lock: the feed holds each job's events in the log's order.
                feed.publish(job, inner.events.len() as u64 + 1, Item::Event(event.clone()));
            }
            inner.events.push(event);
        }
        self.changed.notify(usize::MAX);
        true
    }

    /// Appends a non-terminal `event` of a job still waiting for a slot: the job stays `queued`.
    pub fn push_queued(&self, event: Event) -> bool {
        debug_assert!(!event.is_terminal());
        {
            let mut inner = self.inner.lock().expect("event log poisoned");
            if inner.status.is_some_and(JobStatus::is_final) {
                return false;
            }
            inner.events.push(event);
        }
        self.changed.notify(usize::MAX);
        true
    }

    /// Current status: queued until the first event (other than a queued job's, see
    /// [`EventLog::push_queued`]), then running until a terminal one.
    pub fn status(&self) -> JobStatus {
        self.inner.lock().expect("event log poisoned").status.unwrap_or(JobStatus::Queued)
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("event log poisoned").events.len()
    }

    /// Whether no event was emitted yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The error text of a failed job.
    pub fn error_message(&self) -> Option<String> {
        let inner = self.inner.lock().expect("event log poisoned");
        match inner.events.last() {
            Some(Event::Error { message }) => Some(message.clone()),
            _ => None,
        }
    }

    /// Events with id > `after`, and whether the log has ended.
    pub fn since(&self, after: u64) -> (Vec<(u64, Event)>, bool) {
        let inner = self.inner.lock().expect("event log poisoned");
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(inner.events.len());
        let batch =
            inner.events[start..].iter().enumerate().map(|(i, e)| ((start + i + 1) as u64, e.clone())).collect();
        (batch, inner.status.is_some_and(JobStatus::is_final))
    }

    /// Waits until events after `after` exist or the log ends; returns them as [`Self::since`].
    pub async fn next_after(&self, after: u64) -> (Vec<(u64, Event)>, bool) {
        loop {
            let listener = self.changed.listen();
            let (batch, ended) = self.since(after);
            if !batch.is_empty() || ended {
                return (batch, ended);
            }
            listener.await;
        }
    }
}

fn final_status(event: &Event) -> JobStatus {
    match event {
        Event::Done { .. } => JobStatus::Completed,
        Event::Cancelled { .. } => JobStatus::Cancelled,
        _ => JobStatus::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_after_terminal() {
        let log = EventLog::default();
        assert_eq!(log.status(), JobStatus::Queued);
        assert!(log.push(Event::narration("a")));
        assert_eq!(log.status(), JobStatus::Running);
        assert!(log.push(Event::Cancelled { message: "x".into() }));
        assert!(!log.push(Event::Heartbeat { message: "late".into(), elapsed_secs: 1 }));
        assert!(!log.push(Event::done("late")));
        let (events, ended) = log.since(0);
        assert!(ended);
        let kinds: Vec<_> = events.iter().map(|(_, e)| e.name()).collect();
        assert_eq!(kinds, ["narration", "cancelled"]);
        assert_eq!(log.status(), JobStatus::Cancelled);
        assert_eq!(log.since(1).0.len(), 1);
        assert_eq!(log.since(99).0.len(), 0);
    }

    #[test]
    fn waiter_wakes_on_push() {
        let log = std::sync::Arc::new(EventLog::default());
        let wake = || {
            log.push(Event::narration("x"));
        };
        let (batch, ended) = super::super::woken(log.clone(), |l| async move { l.next_after(0).await }, wake);
        assert_eq!(batch.len(), 1);
        assert!(!ended);
    }
}
