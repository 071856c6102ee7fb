//! The job table. Each job's work runs as a `smol::Task` kept here; cancel = drop that task.
//!
//! # Invariant: nothing of a job happens after its `DELETE` answered
//! [`Registry::cancel`] returns only when (1) the job's task has been dropped — so none of its
//! code runs again, and any synchronous cache write it made inside a poll (refs, publish rename
//! and snapshot link) is complete — and (2) its [`Outstanding`] count is zero — so no disk write
//! handed to a blocking thread is pending or running, and no helper task (heartbeat) is alive.
//! (2) holds without a window because every blocking write takes its ticket on the executor,
//! inside the job's poll, *before* it is handed to the pool ([`Outstanding::unblock`]); after (1)
//! no new ticket can be taken. The same holds for a job that ends on its own: its terminal event
//! is logged (and its task uncounted) only once its outstanding work has drained.
//! Pinned by `chaos::no_byte_after_delete` (e2e) and `outstanding`'s unit test.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rbee_protocol::{Event, JobId, JobInfo, JobStatus};

use super::feed::Item;
use super::{EventLog, Feed, Outstanding};

/// Why a cancel did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No job with that id.
    #[error("no job `{0}`")]
    NotFound(JobId),
    /// The job had already ended.
    #[error("job `{id}` already ended ({})", status.as_str())]
    Ended {
        /// The job.
        id: JobId,
        /// Its final status.
        status: JobStatus,
    },
}

/// `job-<uuid v4>` from the OS's random source: a job id cannot be guessed (a cancel or a stream
/// needs it), unlike ids from a seeded PRNG.
fn new_job_id() -> JobId {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the OS random source failed");
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex::encode(b);
    format!("job-{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Counts live tasks (jobs and heartbeats); decremented when the future is dropped.
#[derive(Debug)]
pub struct TaskGuard(Arc<AtomicUsize>);

impl TaskGuard {
    /// Counts one more live task until the guard drops.
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a job's work gets: its log, its start time, and the live-task counter.
#[derive(Debug, Clone)]
pub struct JobCtx {
    /// The job's id.
    pub id: JobId,
    /// The job's event log.
    pub log: Arc<EventLog>,
    /// When the job started.
    pub started: Instant,
    /// Live task counter, for helper tasks (heartbeat) the job spawns.
    pub live: Arc<AtomicUsize>,
    /// The job's disk writes in flight and helper tasks; cancel waits until none is left.
    pub outstanding: Outstanding,
}

impl JobCtx {
    /// Emits a narration line.
    pub fn narrate(&self, message: impl Into<String>) {
        let message = message.into();
        // Names in narration come from requests and hubs: nothing in them may hide or reorder text.
        self.log.push(Event::narration(rbee_protocol::escape(&message).into_owned()));
    }
}

struct Job {
    description: String,
    ctx: JobCtx,
    task: Mutex<Option<smol::Task<()>>>,
    ended_at: Mutex<Option<Instant>>,
}

/// How long / how many finished jobs are kept for status queries and replay.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// At most this many finished jobs.
    pub max_finished: usize,
    /// Finished jobs older than this are dropped.
    pub ttl: Duration,
}

/// The job table.
pub struct Registry {
    jobs: Mutex<HashMap<JobId, Arc<Job>>>,
    live: Arc<AtomicUsize>,
    retention: Retention,
    /// Every job's events in one sequence (`GET /v1/events`).
    feed: Arc<Feed>,
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new(retention: Retention) -> Self {
        Self { jobs: Mutex::default(), live: Arc::default(), retention, feed: Arc::default() }
    }

    /// Live tasks (jobs + heartbeats) right now.
    pub fn live_tasks(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// The hive-wide feed of every job's events.
    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// Jobs not yet ended.
    pub fn running(&self) -> usize {
        self.table().values().filter(|j| !j.ctx.log.status().is_final()).count()
    }

    /// Jobs in the table (running and retained finished ones).
    pub fn count(&self) -> usize {
        self.prune();
        self.table().len()
    }

    /// Starts a job running `work`, whose output is the job's terminal event.
    pub fn spawn<F, Fut>(&self, description: String, work: F) -> JobId
    where
        F: FnOnce(JobCtx) -> Fut,
        Fut: Future<Output = Event> + Send + 'static,
    {
        self.prune();
        let id = new_job_id();
        let ctx = JobCtx {
            id: id.clone(),
            log: Arc::new(EventLog::tapped(self.feed.clone(), id.clone())),
            started: Instant::now(),
            live: self.live.clone(),
            outstanding: Outstanding::default(),
        };
        let job = Arc::new(Job { description, ctx: ctx.clone(), task: Mutex::new(None), ended_at: Mutex::new(None) });
        // In the table, then announced, before its first event: a feed subscriber's snapshot of
        // the table and the feed's order agree (`http/events.rs`).
        self.table().insert(id.clone(), job.clone());
        self.feed.publish(&id, 0, Item::Started { operation: job.description.clone() });
        let guard = TaskGuard::new(&self.live);
        let fut = work(ctx.clone());
        let task_job = job.clone();
        let task = smol::spawn(async move {
            let terminal = fut.await;
            // A write the job dropped mid-way (an error path) still runs on its pool thread.
            task_job.ctx.outstanding.drained().await;
            // Uncounted before `done` is visible: a client seeing it then finds `live_tasks` 0.
            drop(guard);
            task_job.ctx.log.push(terminal);
            *task_job.ended_at.lock().expect("poisoned") = Some(Instant::now());
        });
        *job.task.lock().expect("poisoned") = Some(task);
        id
    }

    /// Status of one job.
    pub fn info(&self, id: &str) -> Option<JobInfo> {
        self.prune();
        self.table().get(id).map(|j| j.info(id))
    }

    /// All jobs, oldest first.
    pub fn list(&self) -> Vec<JobInfo> {
        self.prune();
        let mut all: Vec<_> = self.table().iter().map(|(id, j)| (j.ctx.started, j.info(id))).collect();
        all.sort_by_key(|(t, _)| *t);
        all.into_iter().map(|(_, i)| i).collect()
    }

    /// The event log of a job.
    pub fn log(&self, id: &str) -> Option<Arc<EventLog>> {
        self.prune();
        self.table().get(id).map(|j| j.ctx.log.clone())
    }

    /// Cancels a job: drops its task (waiting until it is really gone), waits until its
    /// outstanding work (blocking disk writes, heartbeat) has drained, then records the
    /// `cancelled` event. When this returns, no byte of the job reaches the disk any more and none
    /// of its tasks is alive (see the module docs for why there is no window).
    ///
    /// # Errors
    /// [`CancelError::NotFound`] for an unknown id, [`CancelError::Ended`] when it had ended.
    pub async fn cancel(&self, id: &str) -> Result<JobInfo, CancelError> {
        self.cancel_saying(id, "🛑 Operation cancelled: download task dropped").await
    }

    /// [`Self::cancel`], with `message` in the `cancelled` event.
    async fn cancel_saying(&self, id: &str, message: &str) -> Result<JobInfo, CancelError> {
        self.prune();
        let job = self.table().get(id).cloned().ok_or_else(|| CancelError::NotFound(id.to_owned()))?;
        let task = job.task.lock().expect("poisoned").take();
        let Some(task) = task else {
            // A concurrent cancel took the task and is about to record `cancelled`: report the
            // final status, never `running` (bounded wait, in case that cancel was dropped).
            let log = job.ctx.log.clone();
            let wait = async move { drop(log.next_after(u64::MAX).await) };
            let timeout = async {
                smol::Timer::after(Duration::from_secs(5)).await;
            };
            futures_lite::future::or(wait, timeout).await;
            return Err(CancelError::Ended { id: id.to_owned(), status: job.ctx.log.status() });
        };
        // A job that ended on its own (its terminal event is in the log, even if we dropped it in
        // its last poll) is reported as such: never a second terminal event.
        task.cancel().await;
        let status = job.ctx.log.status();
        if !matches!(status, JobStatus::Queued | JobStatus::Running) {
            return Err(CancelError::Ended { id: id.to_owned(), status });
        }
        job.ctx.outstanding.drained().await;
        job.ctx.log.push(Event::Cancelled { message: message.to_owned() });
        *job.ended_at.lock().expect("poisoned") = Some(Instant::now());
        Ok(job.info(id))
    }

    /// Cancels every running job as [`Self::cancel`] does, with [`rbee_protocol::SHUTTING_DOWN`]
    /// as the `cancelled` event's message (shutdown); returns how many it cancelled.
    pub async fn cancel_all(&self) -> usize {
        let ids: Vec<_> = self.table().keys().cloned().collect();
        let mut cancelled = 0;
        for id in ids {
            cancelled += usize::from(self.cancel_saying(&id, rbee_protocol::SHUTTING_DOWN).await.is_ok());
        }
        cancelled
    }

    /// Drops finished jobs past the TTL, then the oldest ones past the count. Runs on every
    /// lookup (not only on submit), so an expired job is gone even on an idle hive.
    fn prune(&self) {
        let Retention { max_finished, ttl } = self.retention;
        let mut table = self.table();
        let mut finished: Vec<(Instant, JobId)> =
            table.iter().filter_map(|(id, j)| j.ended_at.lock().expect("poisoned").map(|t| (t, id.clone()))).collect();
        finished.sort();
        let excess = finished.len().saturating_sub(max_finished);
        for (i, (ended, id)) in finished.into_iter().enumerate() {
            if i < excess || ended.elapsed() > ttl {
                table.remove(&id);
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Arc<Job>>> {
        self.jobs.lock().expect("job table poisoned")
    }
}

impl Job {
    fn info(&self, id: &str) -> JobInfo {
        JobInfo {
            job_id: id.to_owned(),
            status: self.ctx.log.status(),
            operation: self.description.clone(),
            events: self.ctx.log.len() as u64,
            age_secs: self.ctx.started.elapsed().as_secs(),
            error: self.ctx.log.error_message(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::new(Retention { max_finished: 2, ttl: Duration::from_secs(60) })
    }

    #[test]
    fn cancel_drops_the_task_and_is_final() {
        smol::block_on(async {
            let reg = registry();
            let id = reg.spawn("sleep".into(), |ctx| async move {
                ctx.narrate("working");
                smol::Timer::after(Duration::from_secs(60)).await;
                Event::done("never")
            });
            while reg.log(&id).unwrap().is_empty() {
                smol::Timer::after(Duration::from_millis(1)).await;
            }
            assert_eq!(reg.live_tasks(), 1);
            let info = reg.cancel(&id).await.unwrap();
            assert_eq!(info.status, JobStatus::Cancelled);
            assert_eq!(reg.live_tasks(), 0);
            assert!(matches!(reg.cancel(&id).await, Err(CancelError::Ended { status: JobStatus::Cancelled, .. })));
            assert!(matches!(reg.cancel("nope").await, Err(CancelError::NotFound(_))));
        });
    }

    #[test]
    fn cancel_returns_only_after_a_blocking_write_the_job_started() {
        smol::block_on(async {
            let reg = registry();
            let (tx, rx) = std::sync::mpsc::channel();
            let id = reg.spawn("write".into(), |ctx| async move {
                // Counted before it reaches the pool; the pool thread is slow to start it.
                let _write = ctx.outstanding.unblock(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = tx.send(Instant::now());
                });
                ctx.narrate("writing");
                futures_lite::future::pending::<Event>().await
            });
            while reg.log(&id).unwrap().is_empty() {
                smol::Timer::after(Duration::from_millis(1)).await;
            }
            reg.cancel(&id).await.unwrap();
            let answered = Instant::now();
            // The write ran before cancel returned, or was dropped unrun: never after.
            if let Ok(wrote) = rx.recv() {
                assert!(wrote <= answered, "a write landed {:?} after cancel returned", wrote - answered);
            }
            assert_eq!(reg.live_tasks(), 0);
        });
    }

    #[test]
    fn completed_job_cannot_be_cancelled_and_retention_is_bounded() {
        smol::block_on(async {
            let reg = registry();
            let mut ids = Vec::new();
            for _ in 0..5 {
                let id = reg.spawn("quick".into(), |_| async { Event::done("ok") });
                let log = reg.log(&id).unwrap();
                while !log.next_after(0).await.1 {}
                while reg.info(&id).is_some_and(|_| reg.live_tasks() > 0) {
                    smol::Timer::after(Duration::from_millis(1)).await;
                }
                ids.push(id);
            }
            let err = reg.cancel(&ids[4]).await.unwrap_err();
            assert!(matches!(err, CancelError::Ended { status: JobStatus::Completed, .. }));
            assert!(reg.count() <= 3, "retention keeps at most 2 finished + the newest: {}", reg.count());
        });
    }
}
