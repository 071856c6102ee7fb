//! The hive-wide feed: every job's events in one numbered sequence, so one stream (one browser
//! connection) can show every job. A browser opens at most 6 connections to one origin over
//! HTTP/1.1: one stream per job could not show 50 jobs.
//!
//! Memory is bounded: the feed keeps the last [`CAPACITY`] entries. A subscriber whose cursor fell
//! out of it (or comes from an earlier run of the hive) gets [`Since::Gap`] and starts again from a
//! snapshot of the job table (`http/events.rs`).
//!
//! Order: a job's events enter the feed in the order they enter its log (each log publishes while
//! holding its own lock), and a job's `started` entry comes before any of its events.

use std::collections::VecDeque;
use std::sync::Mutex;

use rbee_protocol::{Event, JobId};

/// Entries the feed keeps: about 40 s of 50 busy jobs at 4 progress events a second.
pub const CAPACITY: usize = 8192;

/// What happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// The job was submitted (`job_seq` 0).
    Started {
        /// What it does, e.g. `download org/name/file@main`.
        operation: String,
    },
    /// One event of the job's log.
    Event(Event),
}

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Position in the feed, from 1 (the SSE `id:` of `/v1/events`).
    pub seq: u64,
    /// The job.
    pub job_id: JobId,
    /// Position of the event in the job's own log (its `id:` on the job's stream); 0 for
    /// [`Item::Started`].
    pub job_seq: u64,
    /// What happened.
    pub item: Item,
}

/// Entries after a cursor.
#[derive(Debug, PartialEq)]
pub enum Since {
    /// Every entry after the cursor (maybe none yet).
    Entries(Vec<Entry>),
    /// Some entries after the cursor are gone (or the cursor is from another run): start over.
    Gap,
}

/// The feed (see the module docs).
#[derive(Debug, Default)]
pub struct Feed {
    ring: Mutex<Ring>,
    changed: event_listener::Event,
}

#[derive(Debug, Default)]
struct Ring {
    /// Seq of the newest entry (0: none yet).
    head: u64,
    entries: VecDeque<Entry>,
}

impl Feed {
    /// Appends an entry for `job_id`; drops the oldest one past [`CAPACITY`].
    pub fn publish(&self, job_id: &str, job_seq: u64, item: Item) {
        {
            let mut ring = self.ring.lock().expect("feed poisoned");
            ring.head += 1;
            let seq = ring.head;
            if ring.entries.len() == CAPACITY {
                ring.entries.pop_front();
            }
            ring.entries.push_back(Entry { seq, job_id: job_id.to_owned(), job_seq, item });
        }
        self.changed.notify(usize::MAX);
    }

    /// Seq of the newest entry (0 when none yet).
    pub fn head(&self) -> u64 {
        self.ring.lock().expect("feed poisoned").head
    }

    /// Entries with seq > `after`, or [`Since::Gap`] when some of them are no longer kept.
    pub fn since(&self, after: u64) -> Since {
        let ring = self.ring.lock().expect("feed poisoned");
        let oldest = ring.entries.front().map_or(ring.head + 1, |e| e.seq);
        if after > ring.head || after + 1 < oldest {
            return Since::Gap;
        }
        let skip = usize::try_from(after + 1 - oldest).unwrap_or(usize::MAX);
        Since::Entries(ring.entries.iter().skip(skip).cloned().collect())
    }

    /// Waits until there are entries after `after` (or a gap), then returns them as [`Self::since`].
    pub async fn next_after(&self, after: u64) -> Since {
        loop {
            let listener = self.changed.listen();
            match self.since(after) {
                Since::Entries(e) if e.is_empty() => listener.await,
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(since: Since) -> Vec<u64> {
        match since {
            Since::Entries(e) => e.iter().map(|e| e.seq).collect(),
            Since::Gap => panic!("a gap"),
        }
    }

    #[test]
    fn replays_after_a_cursor_and_reports_gaps() {
        let feed = Feed::default();
        assert_eq!(seqs(feed.since(0)), Vec::<u64>::new());
        assert_eq!(feed.since(1), Since::Gap, "a cursor from an earlier run");
        for i in 0..3 {
            feed.publish("job-a", i, Item::Event(Event::narration("x")));
        }
        assert_eq!(seqs(feed.since(0)), [1, 2, 3]);
        assert_eq!(seqs(feed.since(2)), [3]);
        assert_eq!(seqs(feed.since(3)), Vec::<u64>::new());
        for _ in 0..CAPACITY {
            feed.publish("job-b", 1, Item::Event(Event::narration("y")));
        }
        assert_eq!(feed.head(), CAPACITY as u64 + 3);
        assert_eq!(feed.since(2), Since::Gap, "entries 3 was dropped");
        assert_eq!(seqs(feed.since(3)).len(), CAPACITY, "bounded");
        assert_eq!(seqs(feed.since(3))[0], 4);
    }

    #[test]
    fn a_waiter_wakes_on_publish() {
        let feed = std::sync::Arc::new(Feed::default());
        let wake = || feed.publish("job-a", 0, Item::Started { operation: "op".into() });
        assert_eq!(seqs(super::super::woken(feed.clone(), |f| async move { f.next_after(0).await }, wake)), [1]);
    }
}
