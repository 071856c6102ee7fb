//! A file in parts: byte ranges over several connections at once, each written at its offset
//! into the sparse part file ([`super::sparse`]), while sha256 follows the contiguous prefix.
//!
//! Every part is a surf request read chunk by chunk by a *worker*, a task of an executor that
//! lives inside this future (so inside the job's task): cancelling the job drops the executor,
//! which drops every worker, which drops every response body, which closes every upstream
//! connection at once ([`crate::download::curl`]). Disk writes and hashing run off the executor
//! through the job's [`Outstanding`](crate::jobs::Outstanding), so a cancel still waits for them.
//!
//! * **Plan.** What is missing is cut into chunks of [`chunk_for`] bytes at block boundaries
//!   (one request each). A worker takes the lowest chunk no one holds, so the parts in flight stay
//!   next to each other and the contiguous prefix grows steadily behind them; once none is left
//!   it splits the biggest remaining one in half and takes the back half (the other worker stops
//!   at the split point and drops its connection), so connections stay busy to the end.
//! * **How many.** [`START_PARTS`] workers first; after each measured window the count doubles
//!   while the aggregate throughput rose by at least [`RISE`] since the last widening, never
//!   beyond the job's cap. A CDN that caps each connection keeps rewarding more; a loopback or a
//!   link that one connection fills stops the widening at once.
//! * **Hash.** One hasher task reads the part file over the contiguous written prefix, 1 MiB
//!   at a time, as it grows: the verdict comes within about one part of the last byte.
//! * **Failures.** A part that fails is retried on its own from its last written byte ([`Retry`]);
//!   meanwhile the others keep going. A server that answers a range with `200` ends the plan:
//!   the caller falls back to one stream.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncBufReadExt};
use sha2::{Digest, Sha256};
use surf::StatusCode;

use super::meter::Meter;
use super::sparse::{Sparse, BLOCK};
use super::stream::content_range;
use super::{Fetched, Interrupted, Transfer};
use crate::cache::{at, CacheError};
use crate::download::error::{network, DownloadError};
use crate::download::hub::protocol;
use crate::download::retry::{or_stall, Retry};
use crate::download::stall::Window;

/// Files at least this big travel in parts.
pub(crate) const PARALLEL_MIN: u64 = 8 << 20;
/// Connections a download in parts starts with.
pub(crate) const START_PARTS: usize = 4;
/// Chunks of a file in parts: about 1/64 of it, between these (block multiples).
const CHUNK_MIN: u64 = 2 << 20;
const CHUNK_MAX: u64 = 8 << 20;
/// A part is split only when both halves get at least this much.
const MIN_SPLIT: u64 = 512 << 10;
/// Disk write batch of one part (two per connection at most: one filling, one being written).
const PART_BATCH: usize = 256 << 10;
/// Bytes hashed per blocking call.
const HASH_STEP: usize = 1 << 20;
/// How often the controller looks at progress and throughput.
const TICK: Duration = Duration::from_millis(25);
/// How long throughput is measured before deciding to widen.
const WINDOW: Duration = Duration::from_millis(100);
/// Widen again only when the last widening raised throughput at least this much.
const RISE: f64 = 1.25;
/// Longest wait for new connections' first bytes before measuring anyway.
const WARM_UP: Duration = Duration::from_secs(1);

/// One byte range of the file and how far it got.
#[derive(Debug)]
struct Part {
    start: u64,
    /// Bytes up to here were received (buffered or written).
    cursor: u64,
    /// Bytes up to here are on disk.
    written: u64,
    /// Where this part stops (moves down when another worker takes its back half).
    end: u64,
    taken: bool,
}

#[derive(Debug, Default)]
struct Plan {
    parts: Vec<Part>,
    /// Workers that received their first byte (or ended without work).
    warm: usize,
    /// Most workers that may take another part (lowered when a widening did not pay).
    limit: usize,
    /// Workers that may still take parts.
    workers: usize,
}

/// Why a worker ended the whole plan.
enum End {
    Failed(DownloadError),
    RangeIgnored,
}

/// Why one attempt of a part ended early.
enum Stop {
    Interrupted(Interrupted),
    RangeIgnored,
}

impl From<CacheError> for Stop {
    fn from(e: CacheError) -> Self {
        Self::Interrupted(Interrupted::Fatal(e.into()))
    }
}

fn retry(e: DownloadError) -> Stop {
    Stop::Interrupted(Interrupted::Retry(e))
}

/// What the workers, the hasher and the controller share.
struct Shared<'a> {
    t: &'a Transfer<'a>,
    sparse: Sparse,
    plan: Mutex<Plan>,
    /// Rung when a part's written prefix grows.
    written: event_listener::Event,
    ends: async_channel::Sender<End>,
    hash: Arc<Mutex<Hashing>>,
}

/// sha256 over the contiguous prefix `..at`. A write that lands exactly at `at` is hashed from
/// memory by the thread that wrote it; the hasher task reads the rest back from the part file.
struct Hashing {
    sha: Sha256,
    at: u64,
    /// The hasher task's read buffer.
    buf: Vec<u8>,
}

impl Hashing {
    /// Hashes `data` (just written at `offset`) if it extends the prefix.
    fn inline(hash: &Mutex<Hashing>, offset: u64, data: &[u8]) {
        if let Ok(mut h) = hash.try_lock() {
            if h.at == offset {
                h.sha.update(data);
                h.at += data.len() as u64;
            }
        }
    }
}

impl Shared<'_> {
    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the contiguous written prefix ends.
    fn frontier(&self) -> u64 {
        let plan = self.plan();
        plan.parts.iter().filter(|p| p.written < p.end).map(|p| p.written).min().unwrap_or(self.sparse.size)
    }

    /// Bytes received so far, over every part, plus `done` from before.
    fn received(&self, done: u64) -> u64 {
        done + self.plan().parts.iter().map(|p| p.cursor - p.start).sum::<u64>()
    }

    /// A part for a worker: one no one holds, else the back half of the biggest one left.
    fn claim(&self) -> Option<usize> {
        let mut plan = self.plan();
        let claimed = if plan.workers > plan.limit { None } else { Self::claim_in(&mut plan) };
        if claimed.is_none() {
            // This worker is done: one worker too many, or no work left.
            plan.workers -= 1;
        }
        claimed
    }

    fn claim_in(plan: &mut Plan) -> Option<usize> {
        if let Some(i) = plan.parts.iter().position(|p| !p.taken && p.written < p.end) {
            plan.parts[i].taken = true;
            return Some(i);
        }
        let (i, left) = plan
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.taken && p.cursor < p.end)
            .map(|(i, p)| (i, p.end - p.cursor))
            .max_by_key(|(_, left)| *left)?;
        let victim = &mut plan.parts[i];
        let mid = (victim.cursor + left / 2).next_multiple_of(BLOCK);
        if mid < victim.cursor + MIN_SPLIT || victim.end < mid + MIN_SPLIT {
            return None;
        }
        let end = std::mem::replace(&mut victim.end, mid);
        plan.parts.push(Part { start: mid, cursor: mid, written: mid, end, taken: true });
        Some(plan.parts.len() - 1)
    }
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
        let chunk = chunk_for(size);
        let parts = sparse
            .missing()
            .into_iter()
            .flat_map(|(start, end)| {
                (start..end).step_by(usize::try_from(chunk).unwrap_or(usize::MAX)).map(move |s| (s, end))
            })
            .map(|(start, end)| Part {
                start,
                cursor: start,
                written: start,
                end: (start + chunk).min(end),
                taken: false,
            })
            .collect();
        let (ends, ended) = async_channel::unbounded();
        let shared = Shared {
            t: self,
            sparse,
            plan: Mutex::new(Plan { parts, warm: 0, limit: usize::MAX, workers: 0 }),
            written: event_listener::Event::new(),
            ends,
            hash: Arc::new(Mutex::new(Hashing { sha: Sha256::new(), at: 0, buf: Vec::new() })),
        };
        let ex = smol::Executor::new();
        let mut workers = Vec::new();
        let hasher = ex.spawn(hash(&shared));
        let sha256 = ex.run(self.control(&shared, &ex, &mut workers, hasher, &ended, done)).await?;
        Ok(sha256.map(|sha256| Fetched { path: self.repo.parts(&self.res.etag), size, sha256, in_parts: true }))
    }

    /// Starts the workers, widens while it pays, reports progress; ends with the sha256, or
    /// `None` when the server ignored `Range`, or the first failure.
    async fn control<'s>(
        &self,
        shared: &'s Shared<'s>,
        ex: &smol::Executor<'s>,
        workers: &mut Vec<smol::Task<()>>,
        mut hasher: smol::Task<Result<String, CacheError>>,
        ended: &async_channel::Receiver<End>,
        done: u64,
    ) -> Result<Option<String>, DownloadError> {
        let cap = self.max_parts.max(1);
        let n = START_PARTS.min(cap);
        let mut widen = Widen { n, cap, best: 0.0, window: None, since: Instant::now(), prev: n };
        shared.plan().workers += n;
        workers.extend((0..n).map(|_| ex.spawn(worker(shared))));
        self.ctx.narrate(format!(
            "🔀 fetching `{}` in parts over {} connections (widening up to {cap} while throughput rises)",
            self.file, widen.n
        ));
        let size = shared.sparse.size;
        let mut meter = Meter::new(self.ctx, self.file, Some(size), done);
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
            match widen.step(shared, received) {
                Some(Change::Widen(more)) => {
                    shared.plan().workers += more;
                    workers.extend((0..more).map(|_| ex.spawn(worker(shared))));
                    self.ctx.narrate(format!("🔀 `{}`: widened to {} connections", self.file, widen.n));
                }
                Some(Change::Back(n)) => self.ctx.narrate(format!(
                    "🔀 `{}`: more connections were slower; back to {n} as their parts end",
                    self.file
                )),
                None => {}
            }
        }
    }
}

/// The chunk size of a `size`-byte file: ~1/64 of it, block-aligned, within
/// [`CHUNK_MIN`]..=[`CHUNK_MAX`].
fn chunk_for(size: u64) -> u64 {
    (size / 64).clamp(CHUNK_MIN, CHUNK_MAX).next_multiple_of(BLOCK)
}

/// The adaptive connection count.
struct Widen {
    n: usize,
    cap: usize,
    /// Throughput measured with the previous count (bytes/s).
    best: f64,
    /// The measuring window: when it started, bytes received then.
    window: Option<(Instant, u64)>,
    /// When the count last changed.
    since: Instant,
    /// The count before the last widening.
    prev: usize,
}

/// What the controller does after a measuring window.
enum Change {
    /// Start this many more workers.
    Widen(usize),
    /// The last widening made it slower: back to this many.
    Back(usize),
}

impl Widen {
    /// Whether to change the number of workers now.
    fn step(&mut self, shared: &Shared<'_>, received: u64) -> Option<Change> {
        if self.n >= self.cap {
            return None;
        }
        let Some((t0, b0)) = self.window else {
            if shared.plan().warm >= self.n || self.since.elapsed() > WARM_UP {
                self.window = Some((Instant::now(), received));
            }
            return None;
        };
        let elapsed = t0.elapsed();
        if elapsed < WINDOW {
            return None;
        }
        let rate = (received - b0) as f64 / elapsed.as_secs_f64();
        if rate < self.best * RISE {
            // Settled: more connections no longer pay; fewer did better.
            let back = (rate < self.best).then_some(self.prev);
            self.cap = back.unwrap_or(self.n);
            if let Some(n) = back {
                self.n = n;
                shared.plan().limit = n;
            }
            return back.map(Change::Back);
        }
        let more = (self.n * 2).min(self.cap) - self.n;
        (self.best, self.prev, self.n, self.window, self.since) = (rate, self.n, self.n + more, None, Instant::now());
        Some(Change::Widen(more))
    }
}

/// Takes parts until none is left; reports a failure that ends the plan.
async fn worker(shared: &Shared<'_>) {
    let mut w = Writer::new(shared.t.write_batch.unwrap_or(PART_BATCH));
    let mut warm = false;
    while let Some(i) = shared.claim() {
        if let Err(end) = fetch_part(shared, i, &mut w, &mut warm).await {
            let _ = shared.ends.try_send(end);
            return;
        }
    }
    if let Err(e) = w.flush(shared).await {
        let _ = shared.ends.try_send(End::Failed(e.into()));
        return;
    }
    if !warm {
        shared.plan().warm += 1;
    }
}

/// One part to its end, retried on its own.
async fn fetch_part(shared: &Shared<'_>, i: usize, w: &mut Writer, warm: &mut bool) -> Result<(), End> {
    let (ctx, file, retry) = (shared.t.ctx, shared.t.file, shared.t.retry);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let failure = match part_attempt(shared, i, w, warm, retry).await {
            Ok(()) => return Ok(()),
            Err(Stop::RangeIgnored) => return Err(End::RangeIgnored),
            Err(Stop::Interrupted(Interrupted::Fatal(e))) => return Err(End::Failed(e)),
            Err(Stop::Interrupted(Interrupted::Retry(e))) => e,
        };
        // Keep every byte received, for the next attempt or download to resume from.
        w.flush(shared).await.map_err(|e| End::Failed(e.into()))?;
        let from = {
            let mut plan = shared.plan();
            let p = &mut plan.parts[i];
            p.cursor = p.written;
            p.written
        };
        let what = format!("for a part of `{file}` from byte {from}");
        retry.after_failure(ctx, attempt, what, failure).await.map_err(End::Failed)?;
    }
}

async fn part_attempt(
    shared: &Shared<'_>,
    i: usize,
    w: &mut Writer,
    warm: &mut bool,
    retry: Retry,
) -> Result<(), Stop> {
    let t = shared.t;
    let size = shared.sparse.size;
    let (from, end) = {
        let plan = shared.plan();
        (plan.parts[i].cursor, plan.parts[i].end)
    };
    if from >= end {
        return Ok(());
    }
    let what = format!("downloading bytes {from}-{} of `{}`", end - 1, t.file);
    let following = t.hub.get_following(&t.res.url, from, Some(end - 1), retry.stall, &what);
    let mut response = following.await.map_err(self::retry)?;
    match response.status() {
        StatusCode::PartialContent => match content_range(&response) {
            Some((start, total)) if start == from && total.is_none_or(|t| t == size) => {}
            Some((start, Some(total))) if start == from => {
                let reason = format!("the CDN says the file has {total} bytes, the hub declared {size}");
                return Err(Stop::Interrupted(Interrupted::Fatal(protocol(t.file, reason))));
            }
            _ => return Err(retry_err(&what, format!("the server answered a range at {from} with another one"))),
        },
        StatusCode::Ok => return Err(Stop::RangeIgnored),
        _ => return Err(Stop::Interrupted(Interrupted::from_status(t.refusal(&response)))),
    }
    let mut body = response.take_body();
    let mut window = Window::new(retry.stall, t.pacer.cap(&t.ctx.id));
    loop {
        let ready = future::poll_once(async { body.fill_buf().await.map(<[u8]>::len) }).await;
        if ready.is_none() {
            // Nothing to read right now: let the disk take what is buffered meanwhile.
            w.idle(shared).await?;
        }
        let read = async {
            match ready {
                Some(r) => r,
                None => body.fill_buf().await.map(<[u8]>::len),
            }
        };
        let n = match or_stall(read, retry.stall).await {
            None => return Err(Stop::Interrupted(Interrupted::stalled(&what, retry.stall))),
            Some(Err(e)) => return Err(retry_err(&what, format!("connection lost: {e}"))),
            Some(Ok(0)) => break,
            Some(Ok(n)) => n,
        };
        if !*warm {
            *warm = true;
            shared.plan().warm += 1;
        }
        // Buffered already: this returns at once with the same bytes.
        let chunk = body.fill_buf().await.map_err(|e| retry_err(&what, e))?;
        // Never past this part's end (which another worker may have moved down meanwhile).
        let (at, take, finished) = {
            let mut plan = shared.plan();
            let p = &mut plan.parts[i];
            let take = (p.end - p.cursor).min(n as u64);
            p.cursor += take;
            (p.cursor - take, usize::try_from(take).unwrap_or(0), p.cursor == p.end)
        };
        w.push(shared, i, at, &chunk[..take]).await?;
        body.consume(n);
        // Bandwidth caps, then the slow-trickle check (stall.rs).
        t.pacer.pace(&t.ctx.id, n).await;
        window.add(n).map_err(|why| retry_err(&what, why))?;
        if finished {
            // The part's last batch goes to the disk while the next part connects.
            w.send(shared).await?;
            return Ok(());
        }
    }
    let at = shared.plan().parts[i].cursor;
    Err(retry_err(&what, format!("connection ended at byte {at}")))
}

fn retry_err(what: &str, reason: impl std::fmt::Display) -> Stop {
    retry(network(what, reason))
}

/// A batch being written on a blocking thread: gives back the (emptied) buffer.
type InFlight = smol::Task<(Vec<u8>, std::io::Result<()>)>;

/// One worker's disk writes: a batch filling while the previous one is written.
struct Writer {
    buf: Vec<u8>,
    spare: Vec<u8>,
    batch: usize,
    /// Part and file offset of `buf[0]`.
    part: usize,
    pos: u64,
    /// The write on a blocking thread: its part, where the part's written prefix then ends.
    in_flight: Option<(usize, u64, InFlight)>,
}

impl Writer {
    fn new(batch: usize) -> Self {
        Self { buf: Vec::new(), spare: Vec::new(), batch: batch.max(1), part: 0, pos: 0, in_flight: None }
    }

    /// Buffers `data` of part `i` at offset `at`; a full batch goes to the disk.
    async fn push(&mut self, shared: &Shared<'_>, i: usize, at: u64, mut data: &[u8]) -> Result<(), CacheError> {
        if !self.buf.is_empty() && (self.part != i || self.pos + self.buf.len() as u64 != at) {
            self.send(shared).await?;
        }
        if self.buf.is_empty() {
            (self.part, self.pos) = (i, at);
        }
        while !data.is_empty() {
            data = super::fill(&mut self.buf, self.batch, data);
            if self.buf.len() >= self.batch {
                self.settle(shared).await?;
                self.start(shared);
            }
        }
        Ok(())
    }

    /// The network is quiet: record a finished write, send what is buffered.
    async fn idle(&mut self, shared: &Shared<'_>) -> Result<(), CacheError> {
        if self.in_flight.as_ref().is_some_and(|(.., t)| t.is_finished()) {
            self.settle(shared).await?;
        }
        if self.in_flight.is_none() && !self.buf.is_empty() {
            self.start(shared);
        }
        Ok(())
    }

    /// What is buffered goes to the disk (waiting only for the write before it).
    async fn send(&mut self, shared: &Shared<'_>) -> Result<(), CacheError> {
        self.settle(shared).await?;
        if !self.buf.is_empty() {
            self.start(shared);
        }
        Ok(())
    }

    /// Everything buffered, on disk.
    async fn flush(&mut self, shared: &Shared<'_>) -> Result<(), CacheError> {
        self.settle(shared).await?;
        if !self.buf.is_empty() {
            self.start(shared);
            self.settle(shared).await?;
        }
        Ok(())
    }

    /// Hands the batch to a blocking thread (counted as the job's outstanding work from here).
    fn start(&mut self, shared: &Shared<'_>) {
        let next = std::mem::take(&mut self.spare);
        let buf = std::mem::replace(&mut self.buf, next);
        let (offset, len) = (self.pos, buf.len() as u64);
        self.pos += len;
        let write = shared.sparse.writer(offset, len);
        let hash = shared.hash.clone();
        let task = shared.t.ctx.outstanding.unblock(move || {
            let res = write(&buf);
            if res.is_ok() {
                Hashing::inline(&hash, offset, &buf);
            }
            (buf, res)
        });
        self.in_flight = Some((self.part, offset + len, task));
    }

    /// Waits for the write in flight; then its part's written prefix grows.
    async fn settle(&mut self, shared: &Shared<'_>) -> Result<(), CacheError> {
        let Some((i, upto, task)) = self.in_flight.take() else { return Ok(()) };
        let (mut buf, res) = task.await;
        buf.clear();
        self.spare = buf;
        res.map_err(at(&shared.t.repo.parts(&shared.t.res.etag)))?;
        shared.plan().parts[i].written = upto;
        shared.written.notify(usize::MAX);
        Ok(())
    }
}

/// sha256 over the part file in file order, following the contiguous written prefix: what the
/// writers did not hash from memory is read back, 1 MiB at a time.
async fn hash(shared: &Shared<'_>) -> Result<String, CacheError> {
    let size = shared.sparse.size;
    let at = || shared.hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner).at;
    while at() < size {
        let frontier = loop {
            let listener = shared.written.listen();
            let f = shared.frontier();
            if f > at() {
                break f;
            }
            // Also woken when a write hashed inline finished the file.
            if at() >= size {
                break size;
            }
            listener.await;
        };
        let (hash, data) = (shared.hash.clone(), shared.sparse.data.clone());
        let res = shared
            .t
            .ctx
            .outstanding
            .unblock(move || {
                let mut h = hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut buf = std::mem::take(&mut h.buf);
                buf.resize(HASH_STEP, 0);
                // One step per blocking call: a cancel waits for at most one.
                let n = usize::try_from(frontier.saturating_sub(h.at)).unwrap_or(HASH_STEP).min(HASH_STEP);
                let from = h.at;
                let res = std::os::unix::fs::FileExt::read_exact_at(&*data, &mut buf[..n], from);
                if res.is_ok() {
                    h.sha.update(&buf[..n]);
                    h.at += n as u64;
                }
                h.buf = buf;
                res
            })
            .await;
        res.map_err(at_path(shared))?;
    }
    let h = shared.hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(hex::encode(h.sha.clone().finalize()))
}

fn at_path<'a>(shared: &'a Shared<'_>) -> impl FnOnce(std::io::Error) -> CacheError + 'a {
    let path = shared.t.repo.parts(&shared.t.res.etag);
    move |e| at(&path)(e)
}
