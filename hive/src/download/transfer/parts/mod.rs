//! A file in parts: byte ranges over several connections at once, each written at its offset
//! into the sparse part file ([`super::sparse`]), while sha256 follows the contiguous prefix.
//!
//! Every part is read chunk by chunk by a *worker*, a task of an executor that lives inside this
//! future (so inside the job's task): cancelling the job drops the executor, which drops every
//! worker, which drops every response body, which closes every upstream connection at once
//! ([`crate::download::curl`]). Disk writes and hashing run off the executor through the job's
//! [`Outstanding`](crate::jobs::Outstanding), so a cancel still waits for them.
//!
//! * **One connection first.** A lone worker asks for everything that is missing in one request
//!   and writes it in file order, hashed from memory as it is written: exactly as cheap as one
//!   stream, which is all a link that one connection fills (a loopback, a LAN mirror) can use.
//! * **Wider while it pays.** After a measured window the controller *probes*: it doubles the
//!   workers and measures again. If the aggregate rose by at least [`RISE`] (a CDN that caps each
//!   connection), the count stays and the next probe follows at once, never beyond the job's cap;
//!   if not, the extra workers stop when their current request ends and the next probe waits
//!   longer ([`REPROBE`], doubling).
//! * **Where a new worker starts.** A worker takes the lowest missing range no one holds; once
//!   none is left it *carves* the part with the most bytes left: just after that part's current
//!   request (requests are [`chunk_for`] bytes long while workers share the file, so the carve
//!   never cuts one), or, when that request runs to the part's end, [`chunk_for`] bytes (or half
//!   of what is left) past its cursor, where the other worker stops and drops its connection.
//!   Parts so stay next to each other, the contiguous prefix grows steadily behind them, and
//!   connections stay busy to the end.
//! * **Hash.** What is written exactly where the hashed prefix ends is hashed from memory by the
//!   thread that wrote it; one hasher task reads the rest back from the part file, 1 MiB at a
//!   time, as the contiguous written prefix grows: the verdict comes within about one part of the
//!   last byte.
//! * **Failures.** A part that fails is retried on its own from its last written byte ([`Retry`]);
//!   meanwhile the others keep going. A server that answers a range with `200` ends the plan:
//!   the caller falls back to one stream.

mod hash;
mod plan;
mod widen;
mod writer;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_lite::future;
use surf::StatusCode;

use super::body::Sink;
use super::meter::Meter;
use super::sparse::{Sparse, BLOCK};
use super::stream::content_range;
use super::{Fetched, Interrupted, Transfer};
use crate::cache::CacheError;
use crate::download::curl::Session;
use crate::download::error::{network, DownloadError};
use crate::download::hub::protocol;
use crate::download::retry::{Attempt, Failed};
use hash::{Follow, Hashing};
use plan::{chunk_for, End, Part, Plan, Shared};
use widen::{Change, Widen, TICK};
use writer::{Writer, LONE_BATCH, PART_BATCH};

/// Files at least this big travel in parts.
pub(crate) const PARALLEL_MIN: u64 = 8 << 20;

/// Why one attempt of a part ended early.
enum Stop {
    Interrupted(Interrupted),
    RangeIgnored,
}

impl From<Interrupted> for Stop {
    fn from(e: Interrupted) -> Self {
        Self::Interrupted(e)
    }
}

impl From<CacheError> for Stop {
    fn from(e: CacheError) -> Self {
        Self::Interrupted(Interrupted::Fatal(e.into()))
    }
}

fn retry_err(what: &str, reason: impl std::fmt::Display) -> Stop {
    Stop::Interrupted(Interrupted::Retry(network(what, reason)))
}

impl Transfer<'_> {
    /// Fetches the file in parts into its part file; `None` when the server ignored `Range`.
    pub(super) async fn parts(&self, size: u64) -> Result<Option<Fetched>, DownloadError> {
        let sparse = Sparse::open(self.repo, &self.res.etag, size, &self.ctx.outstanding).await?;
        let done = sparse.done_bytes();
        if done > 0 {
            self.ctx.narrate(format!(
                "↩️  resuming `{}`: {done} of {size} bytes already here, fetching the {} missing",
                self.file,
                size - done
            ));
        }
        let parts = sparse.missing().into_iter().map(|(start, end)| Part::new(start, end, false)).collect();
        let (ends, ended) = async_channel::unbounded();
        let shared = Shared {
            sparse,
            path: self.repo.part_files(&self.res.etag).data,
            gate: self.ctx.outstanding.clone(),
            chunk: chunk_for(size),
            plan: Mutex::new(Plan { parts, cold: 0, limit: 1, workers: 0 }),
            written: event_listener::Event::new(),
            ends,
            hash: Arc::new(Mutex::new(Hashing::default())),
        };
        let ex = smol::Executor::new();
        let follow = Follow {
            hash: shared.hash.clone(),
            data: shared.sparse.data.clone(),
            size,
            path: &shared.path,
            written: &shared.written,
            gate: &shared.gate,
        };
        let hasher = ex.spawn(hash::follow(follow, || shared.frontier()));
        let mut crew = Crew { t: self, shared: &shared, ex: &ex, workers: Vec::new() };
        let sha256 = ex.run(crew.control(hasher, &ended, done)).await?;
        Ok(sha256.map(|sha256| Fetched {
            path: self.repo.part_files(&self.res.etag).data,
            size,
            sha256,
            in_parts: true,
        }))
    }
}

/// The workers of one download in parts, and what starts and stops them.
struct Crew<'s, 'e> {
    t: &'s Transfer<'s>,
    shared: &'s Shared,
    ex: &'e smol::Executor<'s>,
    workers: Vec<smol::Task<()>>,
}

impl Crew<'_, '_> {
    /// Starts the workers, widens while it pays, reports progress; ends with the sha256, or
    /// `None` when the server ignored `Range`, or the first failure.
    async fn control(
        &mut self,
        mut hasher: smol::Task<Result<String, CacheError>>,
        ended: &async_channel::Receiver<End>,
        done: u64,
    ) -> Result<Option<String>, DownloadError> {
        let (t, shared) = (self.t, self.shared);
        let cap = t.max_parts.max(1);
        let mut widen = Widen::new(cap, t.pacer.cap(&t.ctx.id), Instant::now());
        self.spawn(1, 1);
        t.ctx.narrate(format!(
            "🔀 fetching `{}` in parts: one connection first, more (up to {cap}) while they pay",
            t.file
        ));
        let size = shared.sparse.size();
        let mut meter = Meter::new(t.ctx, t.file, Some(size), done);
        loop {
            let hashed = async { Some(Ok((&mut hasher).await)) };
            let end = async { ended.recv().await.ok().map(Err) };
            let tick = async {
                smol::Timer::after(TICK).await;
                None
            };
            match future::or(hashed, future::or(end, tick)).await {
                Some(Ok(sha)) => {
                    let sha = sha?;
                    meter.tick(size, true);
                    return Ok(Some(sha));
                }
                Some(Err(End::Failed(e))) => return Err(e),
                Some(Err(End::RangeIgnored)) => return Ok(None),
                None => {}
            }
            let received = shared.received(done);
            meter.tick(received, false);
            let (cold, workers) = {
                let plan = shared.plan();
                (plan.cold, plan.workers)
            };
            if let Some(change) = widen.step(received, (cold, workers), t.pacer.waited(&t.ctx.id)) {
                self.apply(change, widen.n);
            }
        }
    }

    /// `more` workers join, `n` in all.
    fn spawn(&mut self, more: usize, n: usize) {
        {
            let mut plan = self.shared.plan();
            plan.workers += more;
            plan.cold += more;
            plan.limit = n;
        }
        let (t, shared, ex) = (self.t, self.shared, self.ex);
        self.workers.extend((0..more).map(|_| ex.spawn(worker(t, shared))));
    }

    /// Applies the controller's decision (`n` workers wanted now).
    fn apply(&mut self, change: Change, n: usize) {
        let file = self.t.file;
        match change {
            Change::Widen(more) => {
                self.spawn(more, n);
                self.t.ctx.narrate(format!("🔀 `{file}`: widened to {n} connections"));
            }
            Change::Back(n) => {
                self.shared.plan().limit = n;
                let to = if n == 1 { "one connection".to_owned() } else { format!("{n} connections") };
                self.t.ctx.narrate(format!(
                    "🔀 `{file}`: more connections were not faster; back to {to} as their requests end"
                ));
            }
        }
    }
}

/// What one worker keeps from request to request.
struct Worker {
    w: Writer,
    /// No byte received yet.
    cold: bool,
    /// Its connections, kept between its requests (none if the thread could not start: then each
    /// request has its own).
    session: Option<Session>,
}

/// Takes parts until none is left; reports a failure that ends the plan.
async fn worker(t: &Transfer<'_>, shared: &Shared) {
    let mut me = Worker { w: Writer::new(t.write_batch), cold: true, session: Session::new().ok() };
    while let Some(i) = shared.claim() {
        if let Err(end) = fetch_part(t, shared, i, &mut me).await {
            let _ = shared.ends.try_send(end);
            return;
        }
    }
    if let Err(e) = me.w.flush(shared).await {
        let _ = shared.ends.try_send(End::Failed(e.into()));
        return;
    }
    if me.cold {
        shared.plan().cold -= 1;
    }
}

/// One part to its end, request after request, each retried on its own.
async fn fetch_part(t: &Transfer<'_>, shared: &Shared, i: usize, me: &mut Worker) -> Result<(), End> {
    // One request done, more of the part to go: each has its own count of attempts.
    while !t.retry.run(t.ctx, &mut Request { t, shared, i, me: &mut *me }).await? {}
    Ok(())
}

/// One request of a part as a retried step: a failed one keeps every byte received, for the next
/// attempt or download to resume from.
struct Request<'a> {
    t: &'a Transfer<'a>,
    shared: &'a Shared,
    i: usize,
    me: &'a mut Worker,
}

impl Attempt for Request<'_> {
    type Output = bool;
    type Error = End;

    async fn attempt(&mut self) -> Result<bool, Failed<End>> {
        let (shared, i) = (self.shared, self.i);
        match self.once().await {
            Ok(done) => Ok(done),
            Err(Stop::RangeIgnored) => Err(Failed::Stop(End::RangeIgnored)),
            Err(Stop::Interrupted(Interrupted::Fatal(e))) => Err(Failed::Stop(End::Failed(e))),
            Err(Stop::Interrupted(Interrupted::Retry(e))) => {
                self.me.w.flush(shared).await.map_err(|e| Failed::Stop(End::Failed(e.into())))?;
                let from = {
                    let mut plan = shared.plan();
                    let p = &mut plan.parts[i];
                    p.cursor = p.written;
                    p.written
                };
                Err(Failed::Retry(format!("for a part of `{}` from byte {from}", self.t.file), e))
            }
        }
    }
}

impl Request<'_> {
    /// One request of the part: to its end for a lone worker, else [`chunk_for`] bytes.
    /// `Ok(true)` when the part is done.
    async fn once(&mut self) -> Result<bool, Stop> {
        let (t, shared, i) = (self.t, self.shared, self.i);
        let (from, asked, lone) = {
            let mut plan = shared.plan();
            let lone = plan.workers == 1;
            let p = &mut plan.parts[i];
            p.asked = if lone { p.end } else { p.end.min(p.cursor + shared.chunk) };
            (p.cursor, p.asked, lone)
        };
        if from >= asked {
            return Ok(true);
        }
        self.me.w.batch = t.write_batch.unwrap_or_else(|| batch_for(lone, t.pacer.cap(&t.ctx.id)));
        let what = format!("downloading bytes {from}-{} of `{}`", asked - 1, t.file);
        let mut response = open_range(t, shared.sparse.size(), (from, asked), &what, self.me.session.as_ref()).await?;
        match t.read_body(&mut response, &what, self).await? {
            Some(part_done) => Ok(part_done),
            None => {
                let at = shared.plan().parts[i].cursor;
                Err(retry_err(&what, format!("connection ended at byte {at}")))
            }
        }
    }
}

/// A worker's write batch: a lone worker's is larger; under a bandwidth cap it holds at most
/// 1/32 s of the cap (down to one block), so that a cancel loses little of what arrived.
fn batch_for(lone: bool, cap: Option<u64>) -> usize {
    let batch = if lone { LONE_BATCH } else { PART_BATCH };
    let block = usize::try_from(BLOCK).unwrap_or(batch);
    cap.map_or(batch, |cap| usize::try_from(cap / 32).unwrap_or(batch).clamp(block, batch))
}

/// The GET of bytes `from..asked` of a `size`-byte file, its answer checked: the range asked
/// for, of this file.
async fn open_range(
    t: &Transfer<'_>,
    size: u64,
    (from, asked): (u64, u64),
    what: &str,
    session: Option<&Session>,
) -> Result<surf::Response, Stop> {
    let following = t.hub.get_following(&t.res.url, (from, Some(asked - 1)), t.retry.stall, what, session);
    let response = following.await.map_err(Interrupted::Retry)?;
    match response.status() {
        StatusCode::PartialContent => match content_range(&response) {
            Some((start, total)) if start == from && total.is_none_or(|t| t == size) => Ok(response),
            Some((start, Some(total))) if start == from => {
                let reason = format!("the CDN says the file has {total} bytes, the hub declared {size}");
                Err(Stop::Interrupted(Interrupted::Fatal(protocol(t.file, reason))))
            }
            _ => Err(retry_err(what, format!("the server answered a range at {from} with another one"))),
        },
        StatusCode::Ok => Err(Stop::RangeIgnored),
        _ => Err(Stop::Interrupted(Interrupted::from_status(t.refusal(&response)))),
    }
}

/// As a [`Sink`], a request's body goes to its worker's writer, never past the request's nor the
/// part's end (another worker may have carved it); stops when the request is done (`true`: the
/// part too).
impl Sink for Request<'_> {
    type Stop = bool;
    type Error = Stop;

    async fn idle(&mut self) -> Result<(), Stop> {
        Ok(self.me.w.idle(self.shared).await?)
    }

    async fn take(&mut self, chunk: &[u8]) -> Result<Option<bool>, Stop> {
        let (shared, i) = (self.shared, self.i);
        if self.me.cold {
            self.me.cold = false;
            shared.plan().cold -= 1;
        }
        let (at, take, stop) = {
            let mut plan = shared.plan();
            let p = &mut plan.parts[i];
            let stop = p.end.min(p.asked);
            let take = (stop - p.cursor).min(chunk.len() as u64);
            p.cursor += take;
            let done = (p.cursor == stop).then_some(p.cursor == p.end);
            (p.cursor - take, usize::try_from(take).unwrap_or(0), done)
        };
        self.me.w.push(shared, i, at, &chunk[..take]).await?;
        if stop.is_some() {
            // The last batch goes to the disk while the next request connects.
            self.me.w.send(shared).await?;
        }
        Ok(stop)
    }

    fn whereabouts(&self) -> String {
        format!(" at byte {}", self.shared.plan().parts[self.i].cursor)
    }
}
