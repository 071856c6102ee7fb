//! Scale: events/s delivered to 1000 SSE subscribers (live and replay), and jobs/s for tiny files.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use async_io::{Async, Timer};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};
use smol::Executor;

use crate::proc::{http, is_final, note, Ctx, Hive};
use crate::table::Table;

const JOBS: usize = 10;
const SUBS_PER_JOB: usize = 100;

#[derive(Default)]
struct Counters {
    connected: AtomicUsize,
    finished: AtomicUsize,
    events: AtomicU64,
}

/// A pool of executor threads for the subscribers.
struct Pool {
    ex: Arc<Executor<'static>>,
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn new(n: usize) -> Self {
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let threads = (0..n)
            .map(|_| {
                let (ex, stopped) = (ex.clone(), stopped.clone());
                std::thread::spawn(move || smol::block_on(ex.run(stopped.recv())).unwrap_or_default())
            })
            .collect();
        Self { ex, stop: Some(stop), threads }
    }

    /// `per_job` subscribers on each job's stream; their tasks resolve to the events each read.
    fn subscribe(
        &self,
        addr: &str,
        jobs: &[String],
        per_job: usize,
        c: &Arc<Counters>,
    ) -> Vec<smol::Task<Result<u64>>> {
        let sock: SocketAddr = addr.parse().expect("hive address");
        let mut tasks = Vec::new();
        for id in jobs {
            for _ in 0..per_job {
                let (c, path, host) = (c.clone(), format!("/v1/jobs/{id}/stream"), addr.to_owned());
                tasks.push(self.ex.spawn(async move {
                    let limit = async {
                        Timer::after(Duration::from_secs(120)).await;
                        bail!("subscriber timed out")
                    };
                    future::or(subscriber(sock, host, path, c), limit).await
                }));
            }
        }
        tasks
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn count(hay: &[u8], needle: &[u8]) -> u64 {
    hay.windows(needle.len()).filter(|w| *w == needle).count() as u64
}

/// Reads one job's SSE stream until its terminal event; returns the events seen.
async fn subscriber(sock: SocketAddr, host: String, path: String, c: Arc<Counters>) -> Result<u64> {
    let mut s = Async::<TcpStream>::connect(sock).await.context("connecting a subscriber")?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let (mut buf, mut hay, mut seen, mut first) = (vec![0u8; 32 * 1024], Vec::new(), 0, true);
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            bail!("the stream closed before a terminal event ({seen} events)");
        }
        if first {
            first = false;
            c.connected.fetch_add(1, Ordering::Relaxed);
        }
        let keep = hay.len();
        hay.extend_from_slice(&buf[..n]);
        // Count only matches that end in the new bytes (the kept tail was counted already).
        let from = keep.saturating_sub(5);
        let k = count(&hay[from..], b"\ndata:");
        seen += k;
        c.events.fetch_add(k, Ordering::Relaxed);
        // Match the terminal event in its `data:` line (name, id and data arrive as separate chunks).
        let terminal = [&br#""kind":"done""#[..], br#""kind":"cancelled""#, br#""kind":"error""#];
        if terminal.iter().any(|t| count(&hay[keep.saturating_sub(24)..], t) > 0) {
            c.finished.fetch_add(1, Ordering::Relaxed);
            return Ok(seen);
        }
        let tail = hay.len().saturating_sub(32);
        hay.drain(..tail);
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    Ok(format!("## 6. Scale\n\n{}{}", sse(ctx)?, tiny_jobs(ctx)?))
}

fn sse(ctx: &Ctx) -> Result<String> {
    let (file, rate, window) = (256u64 << 20, 4u64 << 20, ctx.pick(10.0, 3.0));
    let hub = FakeHub::start(HubConfig { rate, ..HubConfig::default() });
    let mut spec = RepoSpec::new("bench/sse");
    for j in 0..JOBS {
        spec = spec.lfs(&format!("m{j}.bin"), file);
    }
    hub.add_repo(spec);
    note("scale: hashing the SSE test files");
    for j in 0..JOBS {
        hub.sha256("bench/sse", &format!("m{j}.bin"));
    }
    let cache = ctx.fresh_dir("sse-cache")?;
    let hive = Hive::spawn(ctx, hub.endpoint(), &cache, &["--heartbeat-secs", "1"])?;
    let ids = (0..JOBS).map(|j| hive.submit("bench/sse", &format!("m{j}.bin"))).collect::<Result<Vec<_>>>()?;
    let subs = JOBS * SUBS_PER_JOB;
    note(format!("scale: {subs} SSE subscribers on {JOBS} throttled jobs, {window} s window"));
    let pool = Pool::new(2);
    let live = Arc::new(Counters::default());
    let tasks = pool.subscribe(&hive.addr, &ids, SUBS_PER_JOB, &live);
    wait_for("every subscriber to connect", Duration::from_secs(60), || {
        live.connected.load(Ordering::Relaxed) == subs
    })?;
    let (e0, t0) = (live.events.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(window));
    let (e1, dt) = (live.events.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
    for id in &ids {
        http(&hive.addr, "DELETE", &format!("/v1/jobs/{id}"), None)?;
    }
    let received: u64 = sum_of(tasks)?;
    let logs: u64 = hive.jobs()?.iter().filter(|j| ids.contains(&j.0)).map(|j| j.2).sum();
    let expected = logs * SUBS_PER_JOB as u64;
    // Replay: the same fan-out over the finished logs, as fast as the hive can send.
    let replay = Arc::new(Counters::default());
    let t1 = Instant::now();
    let tasks = pool.subscribe(&hive.addr, &ids, SUBS_PER_JOB, &replay);
    let replayed: u64 = sum_of(tasks)?;
    let replay_secs = t1.elapsed().as_secs_f64();
    let mut t = Table::new(&["phase", "subscribers", "events delivered", "time", "events/s", "complete"]);
    t.row(&[
        "live (10 running jobs)".to_owned(),
        subs.to_string(),
        format!("{}", e1 - e0),
        format!("{dt:.1} s"),
        format!("{:.0}", (e1 - e0) as f64 / dt),
        format!("{received} of {expected} ({:.2} %)", received as f64 * 100.0 / expected as f64),
    ]);
    t.row(&[
        "replay (10 finished logs)".to_owned(),
        subs.to_string(),
        replayed.to_string(),
        format!("{replay_secs:.2} s"),
        format!("{:.0}", replayed as f64 / replay_secs),
        format!("{replayed} of {expected}"),
    ]);
    Ok(format!(
        "### SSE fan-out\n\n\
         {JOBS} jobs, each downloading a {} MiB file throttled to {} MiB/s (the hive was started with \
         `--heartbeat-secs 1`; progress is emitted every 250 ms), and {SUBS_PER_JOB} subscribers per job \
         (`GET /v1/jobs/{{id}}/stream`, {subs} connections held by the bench on 2 threads). *Live*: events \
         received across all subscribers during a {window} s window once all were connected; then every job is \
         cancelled and each subscriber must have seen every event of its job's log exactly up to the terminal \
         event (\"complete\"). *Replay*: {subs} new subscribers read the finished logs from the start; time from \
         the first connect to the last terminal event. The live rate is bounded by how many events the jobs \
         produce (~{} per second), not by delivery.\n\n{}",
        file >> 20,
        rate >> 20,
        JOBS * 5,
        t.done()
    ))
}

fn tiny_jobs(ctx: &Ctx) -> Result<String> {
    let n = ctx.pick(500, 100);
    let hub = FakeHub::start(HubConfig::default());
    let mut spec = RepoSpec::new("bench/tiny");
    for i in 0..n {
        spec = spec.lfs(&format!("t{i:04}.bin"), 1024);
    }
    hub.add_repo(spec);
    let cache = ctx.fresh_dir("tiny-cache")?;
    let hive = Hive::spawn(ctx, hub.endpoint(), &cache, &["--max-finished-jobs", "100000"])?;
    let mut t = Table::new(&["round", "jobs", "completed", "wall", "jobs/s"]);
    for round in ["cold: distinct 1 KiB files, empty cache", "cached: the same files again"] {
        note(format!("scale: {n} tiny jobs ({round})"));
        let start = Instant::now();
        let ids = (0..n).map(|i| hive.submit("bench/tiny", &format!("t{i:04}.bin"))).collect::<Result<Vec<_>>>()?;
        let jobs = loop {
            let jobs: Vec<_> = hive.jobs()?.into_iter().filter(|j| ids.contains(&j.0)).collect();
            if jobs.len() == n && jobs.iter().all(|j| is_final(&j.1)) {
                break jobs;
            }
            if start.elapsed() > Duration::from_secs(300) {
                bail!("tiny jobs did not finish in 300 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let wall = start.elapsed().as_secs_f64();
        let ok = jobs.iter().filter(|j| j.1 == "completed").count();
        t.row(&[
            round.to_owned(),
            n.to_string(),
            ok.to_string(),
            format!("{wall:.2} s"),
            format!("{:.0}", n as f64 / wall),
        ]);
    }
    Ok(format!(
        "### Jobs per second, tiny files\n\n\
         {n} `model_download` jobs POSTed back to back by one client (one TCP connection each), each for a \
         distinct 1 KiB LFS file (HEAD on the hub, GET on the CDN, sha256 verify, publish); wall = first POST \
         to the moment `GET /v1/jobs` (polled every 20 ms) shows all of them ended. Then the same {n} \
         requests again, answered from the cache (HEAD only, no GET).\n\n{}",
        t.done()
    ))
}

/// The sum of what `tasks` count, once every one ended.
fn sum_of(tasks: Vec<smol::Task<anyhow::Result<u64>>>) -> anyhow::Result<u64> {
    smol::block_on(async {
        let mut sum = 0;
        for t in tasks {
            sum += t.await?;
        }
        Ok(sum)
    })
}
