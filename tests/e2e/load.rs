//! Many SSE subscribers on loopback: every subscriber of every job gets every event, in order,
//! ending with the terminal one; abrupt disconnects leak no socket and no task; the hive's memory
//! and file descriptors return near their baselines afterwards.
//!
//! 200 subscribers over 20 jobs in `just test`; `RBEE_SOAK=1` runs 1000 over 100.

use std::io::Read;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use rbee_protocol::sse::{Decoder, Frame};

use crate::harness::sse::EndMarker;

use crate::harness::fixtures::{soak, wait_idle};
use crate::harness::process::{fd_kinds, fds, rss_kib};
use crate::harness::{http, FakeHub, Hive, RepoSpec, TIMEOUT};
use rbee_tests::hub::HubConfig;

const REPO: &str = "rbee-test/load";
/// Each file takes about 2 s at the throttled rate, so subscribers watch live events.
const FILE_SIZE: u64 = 512 << 10;
const RATE: u64 = 256 << 10;

/// Besides curl's pool of idle upstream connections, the hive's HTTP client creates a few fds
/// (epoll, eventfd, wake-up pipes) on demand and keeps them: up to this many.
const RUNTIME_FDS: usize = 6;

/// TCP sockets of process `pid` as (local port, remote port), from `/proc/<pid>/net/tcp{,6}`
/// joined with its `fd` links; listening sockets left out.
fn sockets(pid: u32) -> Vec<(u16, u16)> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let port = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()).unwrap_or(0);
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] != "0A" && inodes.contains(f[9]) {
                out.push((port(f[1]), port(f[2])));
            }
        }
    }
    out
}

/// Connections the hive holds from its clients (local port = its listening port).
fn client_conns(hive: &Hive) -> usize {
    let port: u16 = hive.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    sockets(hive.pid()).iter().filter(|(local, _)| *local == port).count()
}

/// Connections the hive holds to the hub or its CDN.
fn upstream_conns(hive: &Hive, hub: &FakeHub) -> usize {
    let port = |url: &str| url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).expect("port");
    let (a, b) = (port(hub.endpoint()), port(hub.cdn_url()));
    sockets(hive.pid()).iter().filter(|(_, remote)| *remote == a || *remote == b).count()
}

/// The soft `RLIMIT_NOFILE` of this process (inherited by the hive it spawns).
fn fd_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or_default();
    line.split_whitespace().nth(3).and_then(|v| v.parse().ok()).unwrap_or(1024)
}

/// Raises the soft fd limit to the hard one with `prlimit` (no unsafe code in tests); returns
/// the soft limit in force afterwards.
fn raise_fd_limit() -> u64 {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("prlimit").args(["--pid", &pid, "--nofile=unlimited:"]).output();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .unwrap_or_default();
    let _ = std::process::Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={hard}:")]).output();
    fd_limit()
}

/// Reads one job's stream to its end: all frames, or why it stopped early.
fn subscribe(url: &str, stop_after: Option<usize>) -> Result<Vec<Frame>, String> {
    let mut s = http::open("GET", url, &[("Accept", "text/event-stream")], None).map_err(|e| e.to_string())?;
    if s.status != 200 {
        return Err(format!("status {}", s.status));
    }
    s.conn.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let (mut decoder, mut frames, mut buf) = (Decoder::default(), Vec::new(), [0u8; 4096]);
    let mut marker = EndMarker::default();
    loop {
        let n = s.body.read(&mut buf).map_err(|e| format!("read after {} frames: {e}", frames.len()))?;
        if n == 0 {
            marker.at_end()?;
            return Ok(frames);
        }
        for f in decoder.feed_checked(&buf[..n]) {
            frames.extend(marker.check(f.map_err(|e| e.to_string())?)?);
        }
        if stop_after.is_some_and(|k| frames.len() >= k) {
            // Abrupt: no goodbye, the socket just goes away.
            let _ = s.conn.shutdown(Shutdown::Both);
            return Ok(frames);
        }
    }
}

fn spawn_small<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new().stack_size(128 << 10).spawn(f).expect("spawn subscriber thread")
}

struct Sizes {
    jobs: usize,
    subscribers: usize,
}

fn sizes() -> Sizes {
    let (jobs, subscribers) = if soak() { (100, 1000) } else { (20, 200) };
    // Each subscriber holds a socket here and one in the hive (same limit, inherited).
    let limit = if fd_limit() < (subscribers as u64 + jobs as u64) * 2 + 256 { raise_fd_limit() } else { fd_limit() };
    let fit = usize::try_from(limit.saturating_sub(256) / 2).unwrap_or(usize::MAX).saturating_sub(jobs);
    if fit < subscribers {
        eprintln!("load: fd limit {limit}: {fit} subscribers instead of {subscribers}");
    }
    Sizes { jobs, subscribers: subscribers.min(fit) }
}

/// What one round of [`every_subscriber_gets_every_event_in_order`] saw.
struct Round {
    events: usize,
    secs: f64,
    peak_fds: usize,
    peak_rss: u64,
}

/// `jobs` downloads (files `r{round}-f{i}`) with `subscribers` subscribers spread over them; checks
/// every subscriber's stream against the job's full log replayed afterwards.
fn round(hive: &Hive, round: usize, jobs: usize, subscribers: usize) -> Round {
    let pid = hive.pid();
    let started = Instant::now();
    let ids: Vec<String> = (0..jobs).map(|i| hive.start_download(REPO, &format!("r{round}-f{i:03}.bin"))).collect();
    let handles: Vec<_> = (0..subscribers)
        .map(|i| {
            let url = format!("{}/v1/jobs/{}/stream", hive.url(), ids[i % jobs]);
            spawn_small(move || subscribe(&url, None))
        })
        .collect();
    let (mut peak_fds, mut peak_rss) = (fds(pid), rss_kib(pid));
    while !handles.iter().all(std::thread::JoinHandle::is_finished) {
        peak_fds = peak_fds.max(fds(pid));
        peak_rss = peak_rss.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let results: Vec<_> = handles.into_iter().map(|h| h.join().expect("subscriber thread")).collect();
    let secs = started.elapsed().as_secs_f64();
    wait_idle(hive, TIMEOUT);
    let replay = |id: &String| subscribe(&format!("{}/v1/jobs/{id}/stream", hive.url()), None).expect("replay");
    let reference: Vec<Vec<Frame>> = ids.iter().map(replay).collect();
    for (id, frames) in ids.iter().zip(&reference) {
        let terminals = frames.iter().filter(|f| f.event.is_terminal()).count();
        let last = frames.last().map(|f| f.event.name());
        assert!(terminals == 1 && last == Some("done"), "{id}: {terminals} terminal events, last {last:?}");
        let seqs: Vec<_> = frames.iter().map(|f| f.id).collect();
        assert!(seqs.iter().copied().eq((1..=frames.len() as u64).map(Some)), "{id}: ids {seqs:?}");
    }
    let mut events = 0;
    for (i, got) in results.into_iter().enumerate() {
        let (id, want) = (&ids[i % jobs], &reference[i % jobs]);
        let frames = got.unwrap_or_else(|e| panic!("subscriber {i} of {id}: {e}\nhive log:\n{}", hive.log()));
        assert_eq!(&frames, want, "subscriber {i} of {id}: its stream differs from the job's log");
        events += frames.len();
    }
    Round { events, secs, peak_fds, peak_rss }
}

#[test]
fn every_subscriber_gets_every_event_in_order() {
    let Sizes { jobs, subscribers } = sizes();
    let hub = FakeHub::start(HubConfig { rate: RATE, ..HubConfig::default() });
    let files = (0..rounds_max()).flat_map(|r| (0..jobs).map(move |i| format!("r{r}-f{i:03}.bin")));
    hub.add_repo(files.fold(RepoSpec::new(REPO), |spec, f| spec.lfs(&f, FILE_SIZE)));
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let pid = hive.pid();
    let (rss0, fds0, kinds0) = (rss_kib(pid), fds(pid), fd_kinds(pid));
    // Several rounds: the first grows the allocator's pools (glibc keeps them, so RSS does not go
    // back to the baseline); later rounds must add much less each — a leak per subscriber, job or
    // connection would add about as much every round.
    let default_rounds = if soak() { 6 } else { 5 };
    let rounds = std::env::var("RBEE_LOAD_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_rounds);
    let mut rss_after = vec![rss0];
    for r in 0..rounds {
        let got = round(&hive, r, jobs, subscribers);
        let settled = settle(|| client_conns(&hive) == 0);
        let (rss, fd, up) = (rss_kib(pid), fds(pid), upstream_conns(&hive, &hub));
        eprintln!(
            "load: round {r}: {subscribers} subscribers x {jobs} jobs, {} events delivered in {:.2} s; hive fds \
             {fds0} → peak {} → {fd} ({up} pooled upstream); RSS {rss0} KiB → peak {} KiB → {rss} KiB",
            got.events, got.secs, got.peak_fds, got.peak_rss
        );
        assert!(settled, "{} client connections still open after every subscriber left", client_conns(&hive));
        let kinds = fd_kinds(pid);
        assert!(
            fd <= fds0 + up + RUNTIME_FDS,
            "hive fds {fds0} before, {fd} after ({up} pooled upstream): {kinds0:?} → {kinds:?}"
        );
        rss_after.push(rss);
    }
    let first = rss_after[1].saturating_sub(rss_after[0]);
    let last = rss_after[rounds].saturating_sub(rss_after[rounds - 1]);
    assert!(
        last <= first / 4 + 2048,
        "hive RSS after each round {rss_after:?} KiB: the last round added {last} KiB, the first {first} KiB"
    );
}

/// Rounds the repo has files for.
fn rounds_max() -> usize {
    8
}

/// Waits (up to 10 s) until `done` holds; returns whether it did.
fn settle(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[test]
fn abrupt_disconnects_leak_nothing() {
    let Sizes { jobs, subscribers } = sizes();
    let jobs = (jobs / 2).max(5);
    let hub = FakeHub::start(HubConfig { rate: 16 << 10, ..HubConfig::default() });
    hub.add_repo((0..jobs).fold(RepoSpec::new(REPO), |r, i| r.lfs(&format!("f{i:03}.bin"), 64 << 20)));
    // One stream per job: a download in parts changes its connection count on purpose while it
    // measures (parallel.rs tests that); here the fds must move only with the subscribers.
    // Every job transfers at once (not `--max-downloads`' default 8, which would queue the rest).
    let hive = Hive::builder().hub(&hub).many_streams(jobs).spawn();
    let pid = hive.pid();
    let fds_idle = fds(pid);
    let ids: Vec<String> = (0..jobs).map(|i| hive.start_download(REPO, &format!("f{i:03}.bin"))).collect();
    // Every download is under way (a progress event), so the hive holds its upstream sockets.
    for id in &ids {
        hive.sse(id).until(TIMEOUT, |f| f.event.name() == "progress");
    }
    assert!(settle(|| client_conns(&hive) == 0), "the probes' connections stayed open");
    let (_, health) = hive.get("/health");
    let live = health["live_tasks"].clone();
    let (fds_running, rss_running, kinds_running) = (fds(pid), rss_kib(pid), fd_kinds(pid));
    let started = Instant::now();
    let handles: Vec<_> = (0..subscribers)
        .map(|i| {
            let url = format!("{}/v1/jobs/{}/stream", hive.url(), ids[i % jobs]);
            // Leave after 1 to 4 frames: mid-replay or while waiting for the next live event.
            spawn_small(move || subscribe(&url, Some(1 + i % 4)))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let got = h.join().expect("subscriber thread");
        assert!(got.is_ok_and(|f| !f.is_empty()), "subscriber {i} got nothing");
    }
    // The hive notices a gone subscriber at its next write at the latest (heartbeat: 1 s); one that
    // left before the hive accepted it is accepted, read to EOF and closed a moment later.
    let settled = settle(|| client_conns(&hive) == 0);
    // Slack: one upstream transfer being re-established holds 3 (its TCP socket and curl's wakeup
    // socketpair), plus 2 for the probes; a leak per subscriber would be hundreds.
    let fds_settled = settle(|| fds(pid) <= fds_running + 5);
    let (_, health) = hive.get("/health");
    eprintln!(
        "load: {subscribers} abrupt disconnects from {jobs} running jobs in {:.2} s; hive fds {fds_running} → {}, \
         RSS {rss_running} → {} KiB, live tasks {live} → {}",
        started.elapsed().as_secs_f64(),
        fds(pid),
        rss_kib(pid),
        health["live_tasks"]
    );
    assert!(settled, "{} client connections left after the subscribers vanished", client_conns(&hive));
    let kinds = fd_kinds(pid);
    assert!(fds_settled, "hive fds {kinds_running:?} before the subscribers, {kinds:?} after");
    assert_eq!(health["live_tasks"], live, "a gone subscriber changed the live task count");
    assert_eq!(health["running_jobs"], jobs, "{health}");
    for id in &ids {
        assert_eq!(hive.delete(&format!("/v1/jobs/{id}")).0, 200);
    }
    let (_, health) = hive.get("/health");
    assert_eq!(health["live_tasks"], 0, "{health}");
    // Cancelling closes every CDN connection; what stays is curl's pool of idle hub connections.
    let cdn = |hive: &Hive| {
        let cdn_port: u16 = hub.cdn_url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        sockets(hive.pid()).iter().filter(|(_, remote)| *remote == cdn_port).count()
    };
    assert!(settle(|| cdn(&hive) == 0), "{} CDN connections open after cancelling every job", cdn(&hive));
    let (up, fd) = (upstream_conns(&hive, &hub), fds(pid));
    let kinds = fd_kinds(pid);
    assert!(
        fd <= fds_idle + up + RUNTIME_FDS,
        "hive fds {fds_idle} idle, {fd} after cancelling everything ({up} pooled upstream): {kinds:?}"
    );
}
