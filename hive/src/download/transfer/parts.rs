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
use crate::download::curl::Session;
use crate::download::error::{network, DownloadError};
use crate::download::hub::protocol;
use crate::download::retry::{Retry, StallTimer};
use crate::download::stall::Window;

/// Files at least this big travel in parts.
pub(crate) const PARALLEL_MIN: u64 = 8 << 20;
/// Requests of workers that share a file: about 1/64 of it, between these (block multiples).
const CHUNK_MIN: u64 = 2 << 20;
const CHUNK_MAX: u64 = 8 << 20;
/// A part is carved only when both sides keep at least this much.
const MIN_SPLIT: u64 = 512 << 10;
/// Disk write batch of a worker that shares the file (two per connection at most: one filling,
/// one being written).
const PART_BATCH: usize = 256 << 10;
/// Disk write batch of a lone worker (as one stream's largest).
const LONE_BATCH: usize = 1 << 20;
/// Bytes hashed per blocking call.
const HASH_STEP: usize = 1 << 20;
/// How often the controller looks at progress and throughput.
const TICK: Duration = Duration::from_millis(25);
/// How long throughput is measured before deciding.
const WINDOW: Duration = Duration::from_millis(100);
/// A probe is kept when it raised throughput at least this much.
const RISE: f64 = 1.25;
/// Longest wait for new connections' first bytes before measuring anyway.
const WARM_UP: Duration = Duration::from_secs(1);
/// Workers once one connection turned out not to be enough.
const START_PARTS: usize = 4;
/// Cores the hive may keep busy and still widen: sha256 is one serial stream, so a hive that
/// already keeps a core busy is what limits the pace, not the network. On a host (or an affinity
/// mask) with one core, which the CDN's peer and the keeper share, 60 % of it.
const BUSY: f64 = 1.0;
const BUSY_SHARE: f64 = 0.6;
/// Wait before probing again after a probe that did not pay (doubles each time).
const REPROBE: Duration = Duration::from_secs(1);

/// One byte range of the file and how far it got.
#[derive(Debug)]
struct Part {
    start: u64,
    /// Bytes up to here were received (buffered or written).
    cursor: u64,
    /// Bytes up to here are on disk.
    written: u64,
    /// Where this part stops (moves down when another worker carves its back).
    end: u64,
    /// Where the current request stops by itself (`end` when it runs to the part's end).
    asked: u64,
    taken: bool,
}

impl Part {
    fn new(start: u64, end: u64, taken: bool) -> Self {
        Self { start, cursor: start, written: start, end, asked: start, taken }
    }
}

#[derive(Debug, Default)]
struct Plan {
    parts: Vec<Part>,
    /// Live workers that have not received a byte yet.
    cold: usize,
    /// Most workers that may take another part.
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
    /// Request length of workers that share the file.
    chunk: u64,
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
    /// Hashes `data` (just written at `offset`) if it extends the prefix; whether it did.
    fn inline(hash: &Mutex<Hashing>, offset: u64, data: &[u8]) -> bool {
        let Ok(mut h) = hash.try_lock() else { return false };
        if h.at != offset {
            return false;
        }
        h.sha.update(data);
        h.at += data.len() as u64;
        true
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

    /// A part for a worker: the lowest one no one holds, else one carved from the part with the
    /// most bytes left.
    fn claim(&self) -> Option<usize> {
        let mut plan = self.plan();
        let claimed = if plan.workers > plan.limit { None } else { self.claim_in(&mut plan) };
        if claimed.is_none() {
            // This worker is done: one worker too many, or no work left.
            plan.workers -= 1;
        }
        claimed
    }

    fn claim_in(&self, plan: &mut Plan) -> Option<usize> {
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
        let ahead = victim.cursor + self.chunk.min(left / 2);
        // Just after its current request, unless that one runs to the part's end.
        let cut = if victim.asked < victim.end { ahead.max(victim.asked) } else { ahead };
        let cut = cut.next_multiple_of(BLOCK);
        if cut < victim.cursor + MIN_SPLIT || victim.end < cut + MIN_SPLIT {
            return None;
        }
        let end = std::mem::replace(&mut victim.end, cut);
        plan.parts.push(Part::new(cut, end, true));
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
        let parts = sparse.missing().into_iter().map(|(start, end)| Part::new(start, end, false)).collect();
        let (ends, ended) = async_channel::unbounded();
        let shared = Shared {
            t: self,
            sparse,
            chunk: chunk_for(size),
            plan: Mutex::new(Plan { parts, cold: 0, limit: 1, workers: 0 }),
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
        let mut widen = Widen::new(cap, Instant::now());
        // `more` workers join, `n` in all.
        let spawn = |more: usize, n: usize, workers: &mut Vec<smol::Task<()>>| {
            {
                let mut plan = shared.plan();
                plan.workers += more;
                plan.cold += more;
                plan.limit = n;
            }
            workers.extend((0..more).map(|_| ex.spawn(worker(shared))));
        };
        spawn(1, 1, workers);
        self.ctx.narrate(format!(
            "🔀 fetching `{}` in parts: one connection first, more (up to {cap}) while they pay",
            self.file
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
                    spawn(more, widen.n, workers);
                    self.ctx.narrate(format!("🔀 `{}`: widened to {} connections", self.file, widen.n));
                }
                Some(Change::Back(n)) => {
                    shared.plan().limit = n;
                    let to = if n == 1 { "one connection".to_owned() } else { format!("{n} connections") };
                    self.ctx.narrate(format!(
                        "🔀 `{}`: more connections were not faster; back to {to} as their requests end",
                        self.file
                    ));
                }
                None => {}
            }
        }
    }
}

/// The request length of workers sharing a `size`-byte file: ~1/64 of it, block-aligned,
/// within [`CHUNK_MIN`]..=[`CHUNK_MAX`].
fn chunk_for(size: u64) -> u64 {
    (size / 64).clamp(CHUNK_MIN, CHUNK_MAX).next_multiple_of(BLOCK)
}

/// The adaptive connection count: one connection while the hive itself is what limits the pace,
/// more while more pay.
struct Widen {
    /// Workers wanted now.
    n: usize,
    cap: usize,
    /// While probing: the count before, and the throughput it had (bytes/s).
    probing: Option<(usize, f64)>,
    /// The measuring window: when it started, bytes received and the hive's CPU time then.
    window: Option<(Instant, u64, Option<Duration>)>,
    /// When the count last changed.
    since: Instant,
    /// No probe before this.
    next_probe: Instant,
    /// The wait after the next probe that does not pay.
    pause: Duration,
}

/// What the controller does after a measuring window.
enum Change {
    /// Start this many more workers.
    Widen(usize),
    /// The probe made it no faster: back to this many.
    Back(usize),
}

/// What the controller sees at a tick.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// Bytes received so far.
    received: u64,
    /// Every worker got its first byte and the extra ones left.
    settled: bool,
    /// The hive's CPU time so far.
    cpu: Option<Duration>,
    /// Cores this process may run on.
    cores: usize,
}

/// CPU time this process used so far (every thread), if the system says.
fn cpu_time() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let time = |t: nix::sys::time::TimeVal| -> Option<Duration> {
        Some(Duration::new(t.tv_sec().try_into().ok()?, (t.tv_usec() * 1000).try_into().ok()?))
    };
    Some(time(usage.user_time())? + time(usage.system_time())?)
}

impl Widen {
    fn new(cap: usize, now: Instant) -> Self {
        Self { n: 1, cap, probing: None, window: None, since: now, next_probe: now, pause: REPROBE }
    }

    /// Whether to change the number of workers now.
    fn step(&mut self, shared: &Shared<'_>, received: u64) -> Option<Change> {
        let (cold, workers) = {
            let plan = shared.plan();
            (plan.cold, plan.workers)
        };
        // Measure once every worker got its first byte and the extra ones left.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let sample =
            Sample { at: Instant::now(), received, settled: cold == 0 && workers <= self.n, cpu: cpu_time(), cores };
        self.decide(sample)
    }

    fn decide(&mut self, Sample { at: now, received, settled, cpu, cores }: Sample) -> Option<Change> {
        if self.n >= self.cap && self.probing.is_none() {
            return None;
        }
        let Some((t0, b0, c0)) = self.window else {
            if settled || now - self.since > WARM_UP {
                self.window = Some((now, received, cpu));
            }
            return None;
        };
        let elapsed = now - t0;
        // A probe is measured from its start, so that it counts the new connections' first
        // bytes (a CDN may send a new request's first ones at once and then pause), and for
        // longer, once every new connection answered.
        let probing = self.probing.is_some();
        let warm = settled || now - self.since > WARM_UP;
        if elapsed < if probing { 2 * WINDOW } else { WINDOW } || (probing && !warm) {
            return None;
        }
        self.window = Some((now, received, cpu));
        let rate = (received - b0) as f64 / elapsed.as_secs_f64();
        // Cores the hive kept busy (unknown: assume it has room).
        let busy = c0.zip(cpu).map_or(0.0, |(c0, c)| c.saturating_sub(c0).as_secs_f64() / elapsed.as_secs_f64());
        log::debug!(
            "parts: {} workers: {:.1} MiB/s, {busy:.2} cores busy (probing from {:?})",
            self.n,
            rate / f64::from(1 << 20),
            self.probing.map(|(n, r)| (n, r / f64::from(1 << 20)))
        );
        match self.probing.take() {
            Some((before, base)) if rate < base * RISE => {
                // Not worth it: back, and probe again later.
                (self.n, self.window, self.since) = (before, None, now);
                self.next_probe = now + self.pause;
                self.pause *= 2;
                Some(Change::Back(before))
            }
            // The hive itself (hashing, writing) sets the pace: more connections cannot help.
            _ if busy >= BUSY.min(BUSY_SHARE * cores as f64) => None,
            // It paid: keep them, and probe further at once.
            Some(_) => self.probe(rate, (now, received, cpu)),
            None if self.n == 1 => {
                // One connection leaves the hive idle: the network sets the pace, so several
                // connections at once (a CDN that caps each one rewards them).
                let more = START_PARTS.min(self.cap) - 1;
                (self.n, self.window, self.since) = (1 + more, None, now);
                Some(Change::Widen(more))
            }
            None => (now >= self.next_probe).then(|| self.probe(rate, (now, received, cpu))).flatten(),
        }
    }

    /// Starts a probe with twice the workers (up to the cap), to be measured from `start` against
    /// `base`, the throughput of the last window.
    fn probe(&mut self, base: f64, start: (Instant, u64, Option<Duration>)) -> Option<Change> {
        let to = (self.n * 2).min(self.cap);
        let more = to.checked_sub(self.n).filter(|m| *m > 0)?;
        self.probing = Some((self.n, base));
        (self.n, self.window, self.since) = (to, Some(start), start.0);
        Some(Change::Widen(more))
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
async fn worker(shared: &Shared<'_>) {
    let mut me = Worker { w: Writer::new(shared.t.write_batch), cold: true, session: Session::new().ok() };
    while let Some(i) = shared.claim() {
        if let Err(end) = fetch_part(shared, i, &mut me).await {
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
async fn fetch_part(shared: &Shared<'_>, i: usize, me: &mut Worker) -> Result<(), End> {
    let (ctx, file, retry) = (shared.t.ctx, shared.t.file, shared.t.retry);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let failure = match part_attempt(shared, i, me, retry).await {
            Ok(true) => return Ok(()),
            Ok(false) => {
                // One request done, more of the part to go.
                attempt = 0;
                continue;
            }
            Err(Stop::RangeIgnored) => return Err(End::RangeIgnored),
            Err(Stop::Interrupted(Interrupted::Fatal(e))) => return Err(End::Failed(e)),
            Err(Stop::Interrupted(Interrupted::Retry(e))) => e,
        };
        // Keep every byte received, for the next attempt or download to resume from.
        me.w.flush(shared).await.map_err(|e| End::Failed(e.into()))?;
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

/// One request of part `i`: to the part's end for a lone worker, else [`chunk_for`] bytes.
/// `Ok(true)` when the part is done.
async fn part_attempt(shared: &Shared<'_>, i: usize, me: &mut Worker, retry: Retry) -> Result<bool, Stop> {
    let t = shared.t;
    let size = shared.sparse.size;
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
    let Worker { w, cold, session } = me;
    w.batch = t.write_batch.unwrap_or(if lone { LONE_BATCH } else { PART_BATCH });
    let what = format!("downloading bytes {from}-{} of `{}`", asked - 1, t.file);
    let following = t.hub.get_following(&t.res.url, (from, Some(asked - 1)), retry.stall, &what, session.as_ref());
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
    let mut stall = StallTimer::new(retry.stall);
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
        let n = match stall.read(read).await {
            None => return Err(Stop::Interrupted(Interrupted::stalled(&what, retry.stall))),
            Some(Err(e)) => return Err(retry_err(&what, format!("connection lost: {e}"))),
            Some(Ok(0)) => break,
            Some(Ok(n)) => n,
        };
        if *cold {
            *cold = false;
            shared.plan().cold -= 1;
        }
        // Buffered already: this returns at once with the same bytes.
        let chunk = body.fill_buf().await.map_err(|e| retry_err(&what, e))?;
        // Never past the request's nor the part's end (another worker may have carved it).
        let (at, take, stop) = {
            let mut plan = shared.plan();
            let p = &mut plan.parts[i];
            let stop = p.end.min(p.asked);
            let take = (stop - p.cursor).min(n as u64);
            p.cursor += take;
            let done = (p.cursor == stop).then_some(p.cursor == p.end);
            (p.cursor - take, usize::try_from(take).unwrap_or(0), done)
        };
        w.push(shared, i, at, &chunk[..take]).await?;
        body.consume(n);
        // Bandwidth caps, then the slow-trickle check (stall.rs).
        t.pacer.pace(&t.ctx.id, n).await;
        window.add(n).map_err(|why| retry_err(&what, why))?;
        if let Some(part_done) = stop {
            // The last batch goes to the disk while the next request connects.
            w.send(shared).await?;
            return Ok(part_done);
        }
    }
    let at = shared.plan().parts[i].cursor;
    Err(retry_err(&what, format!("connection ended at byte {at}")))
}

fn retry_err(what: &str, reason: impl std::fmt::Display) -> Stop {
    retry(network(what, reason))
}

/// A batch being written on a blocking thread: gives back the (emptied) buffer and whether the
/// batch was hashed from memory.
type InFlight = smol::Task<(Vec<u8>, std::io::Result<bool>)>;

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
    /// A writer with a fixed batch (tests), else one each request sets.
    fn new(fixed: Option<usize>) -> Self {
        let batch = fixed.unwrap_or(PART_BATCH).max(1);
        Self { buf: Vec::new(), spare: Vec::new(), batch, part: 0, pos: 0, in_flight: None }
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
            let res = write(&buf).map(|()| Hashing::inline(&hash, offset, &buf));
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
        let hashed = res.map_err(at(&shared.t.repo.parts(&shared.t.res.etag)))?;
        let complete = {
            let mut plan = shared.plan();
            let part = &mut plan.parts[i];
            part.written = upto;
            part.written >= part.end
        };
        // The hasher has work only when these bytes were not hashed here, or when a finished
        // part may join the prefix to bytes written further on.
        if !hashed || complete {
            shared.written.notify(usize::MAX);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the controller for `secs` over a link where `n` connections bring `rate(n)` bytes/s
    /// and keep `cores(n)` cores of the hive busy; returns the changes it made, with when.
    fn simulate(cap: usize, secs: f64, rate: impl Fn(usize) -> f64, cores: impl Fn(usize) -> f64) -> Vec<(f64, usize)> {
        simulate_on(2, cap, secs, rate, cores)
    }

    fn simulate_on(
        host_cores: usize,
        cap: usize,
        secs: f64,
        rate: impl Fn(usize) -> f64,
        cores: impl Fn(usize) -> f64,
    ) -> Vec<(f64, usize)> {
        let t0 = Instant::now();
        let mut w = Widen::new(cap, t0);
        let (mut n, mut received, mut cpu, mut t) = (1usize, 0.0f64, 0.0f64, 0.0f64);
        let mut changes = Vec::new();
        let dt = TICK.as_secs_f64();
        while t < secs {
            t += dt;
            received += rate(n) * dt;
            cpu += cores(n) * dt;
            let sample = Sample {
                at: t0 + Duration::from_secs_f64(t),
                received: received as u64,
                settled: true,
                cpu: Some(Duration::from_secs_f64(cpu)),
                cores: host_cores,
            };
            match w.decide(sample) {
                Some(Change::Widen(more)) => n += more,
                Some(Change::Back(to)) => n = to,
                None => continue,
            }
            assert_eq!(n, w.n);
            changes.push((t, n));
        }
        changes
    }

    const MIB: f64 = 1048576.0;

    #[test]
    fn a_connection_that_keeps_the_hive_busy_stays_alone() {
        // Unthrottled loopback: one connection fills what the hive can hash; more share it.
        let changes = simulate(16, 3.0, |_| 1000.0 * MIB, |n| 1.7 + 0.1 * n as f64);
        assert_eq!(changes, vec![], "one connection is all a busy hive can use");
    }

    #[test]
    fn on_one_core_a_connection_that_takes_most_of_it_stays_alone() {
        let changes = simulate_on(1, 16, 3.0, |_| 400.0 * MIB, |_| 0.7);
        assert_eq!(changes, vec![], "one core at 70 % is all the hive gets");
        let capped = simulate_on(1, 16, 3.0, |n| 16.0 * MIB * n as f64, |n| 0.01 * n as f64);
        assert_eq!(capped.first().map(|c| c.1), Some(4), "an idle core still widens: {capped:?}");
    }

    #[test]
    fn a_capped_connection_widens_to_four_then_doubles_while_it_pays() {
        // A CDN capping each connection at 16 MiB/s; the hive is nearly idle.
        let changes = simulate(16, 3.0, |n| 16.0 * MIB * n as f64, |n| 0.01 * n as f64);
        let counts: Vec<usize> = changes.iter().map(|c| c.1).collect();
        assert_eq!(counts, vec![4, 8, 16], "{changes:?}");
        assert!(changes[2].0 < 1.0, "16 connections within a second: {changes:?}");
    }

    #[test]
    fn a_probe_that_does_not_pay_goes_back_and_is_tried_again_later() {
        // Each connection capped at 16 MiB/s, the link at 64 MiB/s: four is the most that pays.
        let changes = simulate(16, 6.0, |n| (16.0 * MIB * n as f64).min(64.0 * MIB), |_| 0.1);
        let counts: Vec<usize> = changes.iter().map(|c| c.1).collect();
        assert_eq!(&counts[..3], &[4, 8, 4], "{changes:?}");
        assert!(counts.iter().all(|n| *n == 4 || *n == 8), "{changes:?}");
        // Probes again after a pause that doubles: 1 s, then 2 s.
        let probes: Vec<f64> = changes.iter().filter(|c| c.1 == 8).map(|c| c.0).collect();
        assert!(probes.len() >= 2 && probes.len() <= 3, "{changes:?}");
        assert!(probes[1] - probes[0] >= REPROBE.as_secs_f64(), "{changes:?}");
    }

    #[test]
    fn never_above_the_cap() {
        let changes = simulate(3, 2.0, |n| 16.0 * MIB * n as f64, |_| 0.0);
        assert_eq!(changes.iter().map(|c| c.1).collect::<Vec<_>>(), vec![3], "{changes:?}");
        assert_eq!(simulate(1, 2.0, |n| 16.0 * MIB * n as f64, |_| 0.0), vec![]);
    }
}
