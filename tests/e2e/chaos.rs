//! Cancels at random moments: N downloads (tiny, small, throttled large; LFS and not; several
//! at once on the same file) are each cancelled after a random delay — before the first byte,
//! mid-body (most of them: at least a quarter must close a CDN connection mid-body, half in the
//! soak), during verify/publish, or after the end. Afterwards:
//!
//! * nothing corrupt or unverified is in the cache: every finished blob's content matches its
//!   name (sha256 for LFS, the hub's content otherwise), every snapshot link points at such a
//!   blob, every `.incomplete` is a prefix of its file, at most one per blob, no stray files;
//!   every block a part map under `.locks/` marks done holds the file's bytes;
//! * no task is left (`/health` `live_tasks` = 0 once every `DELETE` has returned);
//! * each job's replayed stream ends with exactly one terminal event — `cancelled` for a `200`,
//!   `done` for a `409` — and nothing follows it;
//! * then every file still downloads to a verified result.
//!
//! 50 cancels in `just test`; `RBEE_SOAK=1` runs 200. `RBEE_CHAOS_SEED=n` replays a run.
//!
//! [`no_byte_after_delete`] then checks the other half of a cancel over 100+ more: at the instant
//! `DELETE` answers, nothing of the job is alive and nothing in the cache changes afterwards.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::harness::fixtures::{soak, wait_idle};
use crate::harness::{disk_state, FakeHub, Hive, RepoSpec, SseEnd, TIMEOUT};
use rbee_tests::hub::{FileInfo, HubConfig};

const REPO: &str = "rbee-test/chaos";

/// `.locks/models--…/` of [`REPO`]: blob locks, and the part files of downloads in parts.
fn locks_dir(hive: &Hive) -> std::path::PathBuf {
    let folder = hive.repo_dir(REPO).file_name().expect("repo folder").to_owned();
    hive.cache_dir().join(".locks").join(folder)
}

/// (name, size, LFS): a spread from one byte to throttled 20 MiB ones. The first [`LARGE`] are
/// the large files, one per thread (each thread mostly cancels its own, so most cancels land
/// mid-body instead of waiting for another job's blob lock); the rest are shared.
const FILES: &[(&str, u64, bool)] = &[
    ("large-0.gguf", 20 << 20, true),
    ("large-1.gguf", 20 << 20, true),
    ("large-2.gguf", 20 << 20, true),
    ("large-3.gguf", 20 << 20, true),
    ("large-4.gguf", 20 << 20, true),
    ("large-5.gguf", 20 << 20, true),
    ("large-6.gguf", 20 << 20, true),
    ("large-7.gguf", 20 << 20, true),
    ("one-byte.bin", 1, true),
    ("tiny.bin", 700, true),
    ("small.bin", 48 << 10, true),
    ("medium.bin", 512 << 10, true),
    ("README.md", 300, false),
    ("tokenizer.json", 40 << 10, false),
];
/// How many of [`FILES`] are large (the most threads a run uses).
const LARGE: usize = 8;

/// Per-connection CDN rate: a large file takes seconds (a cancel takes a few hundred ms of it, so
/// it survives dozens), medium ones ~170 ms, the small ones a few ms.
const RATE: u64 = 3 << 20;

/// A tiny deterministic PRNG (xorshift64*), seeded per run and printed, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("RBEE_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        u64::try_from(t.as_nanos() % u128::from(u64::MAX)).expect("fits") | 1
    })
}

/// Thread `t`'s next file: mostly its own large file, sometimes any large one (shared with
/// another thread), sometimes a small shared one.
fn pick(rng: &mut Rng, t: usize) -> (&'static str, u64) {
    let i = match rng.below(20) {
        0..=14 => t,
        15 => rng.below(LARGE as u64) as usize,
        _ => LARGE + rng.below((FILES.len() - LARGE) as u64) as usize,
    };
    (FILES[i].0, FILES[i].1)
}

/// A delay for a `size`-byte file at [`RATE`], mostly mid-body: 0 (before the first byte),
/// a few ms (resolve, first chunks), past the body (verify/publish, after the end; a large file
/// is never waited out, or its thread would cancel nothing but cache hits after), or — 22 in 25 —
/// between 20 and 320 ms into the body (less for shorter bodies).
fn chaos_delay(rng: &mut Rng, size: u64) -> Duration {
    let body_ms = size * 1000 / RATE;
    let ms = match rng.below(25) {
        0 => 0,
        1 => rng.below(8),
        2 => body_ms.min(320) + rng.below(200),
        _ => 20 + rng.below(body_ms.clamp(1, 300)),
    };
    Duration::from_millis(ms)
}

/// A delay that lands in every phase: often 0 (before the first byte), short (resolve, first
/// chunks, tiny files' verify/publish), long (mid-body, or after small files end).
fn delay(rng: &mut Rng) -> Duration {
    let ms = match rng.below(10) {
        0 | 1 => 0,
        2..=4 => rng.below(8),
        5..=7 => rng.below(120),
        _ => rng.below(1200),
    };
    Duration::from_millis(ms)
}

struct Outcome {
    job: String,
    file: &'static str,
    delay: Duration,
    status: u16,
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks the repo's cache dir against what the hub serves; returns the problems found.
fn audit(repo_dir: &Path, files: &HashMap<String, (&'static str, FileInfo, Vec<u8>)>) -> Vec<String> {
    let mut problems = Vec::new();
    let blobs = repo_dir.join("blobs");
    let mut partials: BTreeMap<String, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(&blobs).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let etag = name.strip_suffix(".incomplete").unwrap_or(&name);
        let Some((file, info, bytes)) = files.get(etag) else {
            problems.push(format!("stray file in blobs/: {name}"));
            continue;
        };
        let data = std::fs::read(&path).unwrap_or_default();
        if name.ends_with(".incomplete") {
            *partials.entry(etag.to_owned()).or_default() += 1;
            if data.len() as u64 > info.size || bytes[..data.len()] != data[..] {
                problems.push(format!("{file}: partial {name} ({} bytes) is not a prefix of the file", data.len()));
            }
        } else {
            if data.len() as u64 != info.size || &data != bytes {
                problems.push(format!("{file}: blob {name} has {} bytes, wrong content", data.len()));
            }
            if info.lfs && sha256(&data) != name {
                problems.push(format!("{file}: LFS blob {name} has sha256 {}", sha256(&data)));
            }
        }
    }
    for (etag, n) in partials {
        if n > 1 {
            problems.push(format!("{n} partials for blob {etag}"));
        }
    }
    for entry in std::fs::read_dir(repo_dir.join("snapshots")).into_iter().flatten().flatten() {
        for link in std::fs::read_dir(entry.path()).into_iter().flatten().flatten() {
            let name = link.file_name().to_string_lossy().into_owned();
            let Some((_, info, bytes)) = files.values().find(|(f, ..)| *f == name) else {
                problems.push(format!("stray snapshot entry {name}"));
                continue;
            };
            let target = std::fs::read_link(link.path()).map(|t| t.display().to_string()).unwrap_or_default();
            if target != format!("../../blobs/{}", info.etag) {
                problems.push(format!("snapshot {name} → {target:?}, expected ../../blobs/{}", info.etag));
            }
            if std::fs::read(link.path()).ok().as_ref() != Some(bytes) {
                problems.push(format!("snapshot {name} does not resolve to the verified content"));
            }
        }
    }
    problems
}

/// Checks the part files under `.locks/`: every block a part map marks done holds the file's
/// bytes. Returns the problems found.
fn audit_parts(locks: &Path, files: &HashMap<String, (&'static str, FileInfo, Vec<u8>)>) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(locks).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(etag) = name.strip_suffix(".partmap") else { continue };
        let Some((file, _, bytes)) = files.get(etag) else {
            problems.push(format!("part map of an unknown blob: {name}"));
            continue;
        };
        let map = std::fs::read(entry.path()).unwrap_or_default();
        let data = std::fs::read(locks.join(format!("{etag}.parts"))).unwrap_or_default();
        let Some(nl) = map.iter().position(|b| *b == b'\n') else {
            problems.push(format!("{file}: part map without a header"));
            continue;
        };
        let head = String::from_utf8_lossy(&map[..nl]).into_owned();
        let block: usize = head.rsplit(' ').next().and_then(|b| b.parse().ok()).unwrap_or(0);
        for (i, done) in map[nl + 1..].iter().enumerate() {
            let (a, b) = (i * block, ((i + 1) * block).min(bytes.len()));
            if *done == b'1' && data.get(a..b) != Some(&bytes[a..b]) {
                problems.push(format!("{file}: block {i} is marked done but does not hold the file's bytes ({head})"));
            }
        }
    }
    problems
}

/// Replays `job`'s log: exactly one terminal event, last, of the `expected` kind; then the end.
fn check_replay(hive: &Hive, o: &Outcome) -> Option<String> {
    let mut sse = hive.sse(&o.job);
    let frames = sse.until_terminal(TIMEOUT);
    let terminal = frames.last().map(|f| f.event.name()).unwrap_or_default();
    let expected = if o.status == 200 { "cancelled" } else { "done" };
    let ids: Vec<u64> = frames.iter().filter_map(|f| f.id).collect();
    let consecutive = ids.iter().copied().eq(1..=frames.len() as u64);
    let after = sse.next_frame(Duration::from_secs(2));
    if terminal != expected || !consecutive || after != Err(SseEnd::Closed) {
        let kinds: Vec<_> = frames.iter().map(|f| f.event.name()).collect();
        return Some(format!(
            "{} ({}, DELETE after {:?} → {}): events {kinds:?} ids {ids:?}, then {after:?}; expected `{expected}` last",
            o.job, o.file, o.delay, o.status
        ));
    }
    None
}

#[test]
fn random_point_cancels_leave_a_clean_cache() {
    let (n, threads) = if soak() { (200, 8) } else { (50, 5) };
    let seed = seed();
    eprintln!("chaos: {n} cancels, seed {seed} (replay with RBEE_CHAOS_SEED={seed})");
    let hub = FakeHub::start(HubConfig { rate: RATE, ..HubConfig::default() });
    let spec =
        FILES.iter().fold(RepoSpec::new(REPO), |r, &(f, size, lfs)| if lfs { r.lfs(f, size) } else { r.text(f, size) });
    hub.add_repo(spec);
    let files: HashMap<String, (&'static str, FileInfo, Vec<u8>)> = FILES
        .iter()
        .map(|&(f, ..)| {
            let info = hub.file_info(REPO, "main", f).expect("file on the hub");
            (info.etag.clone(), (f, info, hub.file_bytes(REPO, f)))
        })
        .collect();
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).retries(2).spawn();

    let started = Instant::now();
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (hive, outcomes) = (&hive, &outcomes);
            s.spawn(move || {
                let mut rng = Rng(seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                for _ in 0..n / threads {
                    let (file, size) = pick(&mut rng, t);
                    let delay = chaos_delay(&mut rng, size);
                    let job = hive.start_download(REPO, file);
                    std::thread::sleep(delay);
                    let (status, body) = hive.delete(&format!("/v1/jobs/{job}"));
                    assert!(matches!(status, 200 | 409), "DELETE {job}: {status} {body}");
                    if status == 409 {
                        assert_eq!(body["status"], "completed", "{job} ({file}) ended otherwise: {body}");
                    }
                    outcomes.lock().expect("outcomes").push(Outcome { job, file, delay, status });
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().expect("outcomes");
    let chaos_secs = started.elapsed().as_secs_f64();

    // Every DELETE has returned: no job or heartbeat task may be alive.
    let (_, health) = hive.get("/health");
    assert_eq!(health["live_tasks"], 0, "tasks alive after every DELETE returned: {health}\n{}", hive.log());
    assert_eq!(health["running_jobs"], 0, "{health}");
    let mut problems = audit(&hive.repo_dir(REPO), &files);
    problems.extend(audit_parts(&locks_dir(&hive), &files));
    assert!(
        problems.is_empty(),
        "seed {seed}: the cache is not clean:\n{}\nhive log:\n{}",
        problems.join("\n"),
        hive.log()
    );
    let bad: Vec<String> = outcomes.iter().filter_map(|o| check_replay(&hive, o)).collect();
    assert!(bad.is_empty(), "seed {seed}: bad event logs:\n{}", bad.join("\n"));
    let cancelled = outcomes.iter().filter(|o| o.status == 200).count();
    // Cancels that closed a CDN connection mid-body (the client closed it, bytes had gone out).
    assert!(hub.wait_all_closed(TIMEOUT), "CDN connections still open after every DELETE");
    let mid_body = hub.stats().mid_body_cancels();
    let floor = if soak() { n / 2 } else { n / 4 };
    assert!(
        mid_body >= floor,
        "seed {seed}: only {mid_body} of {n} cancels closed a connection mid-body (floor {floor})"
    );

    // Everything still downloads (resuming what the cancels left) to a verified result.
    hub.set_rate(0);
    let jobs: Vec<String> = FILES.iter().map(|(f, ..)| hive.start_download(REPO, f)).collect();
    for (job, (f, ..)) in jobs.iter().zip(FILES) {
        let frames = hive.sse(job).until_terminal(Duration::from_secs(60));
        let last = frames.last().map(|fr| fr.event.clone());
        assert_eq!(frames.last().map(|fr| fr.event.name()), Some("done"), "{f}: {last:?}\n{}", hive.log());
    }
    wait_idle(&hive, TIMEOUT);
    let problems = audit(&hive.repo_dir(REPO), &files);
    assert!(problems.is_empty(), "after the final downloads:\n{}", problems.join("\n"));
    let commit = hub.commit(REPO);
    for (f, ..) in FILES {
        let link = hive.repo_dir(REPO).join("snapshots").join(&commit).join(f);
        assert_eq!(std::fs::read(&link).ok(), Some(hub.file_bytes(REPO, f)), "{f} not in the snapshot");
    }
    let partials = std::fs::read_dir(hive.repo_dir(REPO).join("blobs"))
        .expect("blobs")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        .count();
    assert_eq!(partials, 0, "partials left after every file completed");
    let parts: Vec<String> = std::fs::read_dir(locks_dir(&hive))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parts") || n.ends_with(".partmap"))
        .collect();
    assert!(parts.is_empty(), "part files left after every file completed: {parts:?}");
    eprintln!(
        "chaos: {n} downloads, {cancelled} cancelled (200), {} ended first (409), {mid_body} mid-body cancels \
         (CDN connection closed by the hive, bytes sent > 0), in {chaos_secs:.2} s; cache clean",
        n - cancelled
    );
}

/// Write batch for [`no_byte_after_delete`] (the hive's hidden `--test-write-batch`): with 512-byte
/// batches a disk write is in flight at almost every moment of a download.
const TINY_BATCH: &str = "512";

/// What one cancel of [`no_byte_after_delete`] saw.
struct SyncCancel {
    file: &'static str,
    delay: Duration,
    status: u16,
    /// Bytes in the `.incomplete` when `DELETE` returned.
    partial: u64,
    problem: Option<String>,
}

/// One cancel: start `file`, wait `delay`, `DELETE`; at the instant it returns, snapshot every
/// file of the repo's cache (length, mtime) and `/health`; 300 ms later the snapshot must be
/// the same and `live_tasks` must have been 0.
fn sync_cancel(hive: &Hive, file: &'static str, delay: Duration) -> SyncCancel {
    // The repo's files and its `.locks/` dir, where a download in parts writes.
    let state = || {
        let mut state = disk_state(&hive.repo_dir(REPO));
        state.extend(disk_state(&locks_dir(hive)));
        state
    };
    let job = hive.start_download(REPO, file);
    std::thread::sleep(delay);
    let (status, body) = hive.delete(&format!("/v1/jobs/{job}"));
    let at_delete = state();
    let (_, health) = hive.get("/health");
    std::thread::sleep(Duration::from_millis(300));
    let later = state();
    let partial = at_delete
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "incomplete" || e == "parts"))
        .map(|(_, s)| s.0)
        .sum();
    let mut problems = Vec::new();
    if !matches!(status, 200 | 409) {
        problems.push(format!("DELETE answered {status} {body}"));
    }
    if health["live_tasks"] != 0 {
        problems.push(format!("tasks alive when DELETE returned: {health}"));
    }
    let changed: Vec<String> = at_delete
        .iter()
        .filter(|(p, s)| later.get(*p) != Some(s))
        .map(|(p, s)| format!("{} {s:?} → {:?}", p.display(), later.get(p)))
        .chain(later.keys().filter(|p| !at_delete.contains_key(*p)).map(|p| format!("{} appeared", p.display())))
        .collect();
    if !changed.is_empty() {
        problems.push(format!("written after DELETE answered {status}: {}", changed.join("; ")));
    }
    let problem =
        (!problems.is_empty()).then(|| format!("{job} ({file}, DELETE after {delay:?}): {}", problems.join("; ")));
    SyncCancel { file, delay, status, partial, problem }
}

/// `DELETE` answers only when no byte of the job can follow: over many random-point cancels,
/// with a write in flight at almost every moment (tiny batches, unthrottled upstream), nothing in
/// the job's cache (part files under `.locks/` included: `big.bin` travels in parts) changes
/// after the answer and no task of it is alive. Several hives run side by
/// side, each one job at a time, so `live_tasks` speaks for the cancelled job alone.
#[test]
fn no_byte_after_delete() {
    let (hives, per_hive) = if soak() { (4, 60) } else { (4, 26) };
    let seed = seed();
    eprintln!("chaos: {} synchronous cancels, seed {seed} (replay with RBEE_CHAOS_SEED={seed})", hives * per_hive);
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(RepoSpec::new(REPO).lfs("big.bin", 32 << 20).lfs("small.bin", 96 << 10));
    let runs: Vec<SyncCancel> = std::thread::scope(|s| {
        let hub = &hub;
        let threads: Vec<_> = (0..hives)
            .map(|t| {
                s.spawn(move || {
                    let hive =
                        Hive::builder().hub(hub).heartbeat_secs(1).arg("--test-write-batch").arg(TINY_BATCH).spawn();
                    let mut rng = Rng(seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    let mut runs = Vec::new();
                    for _ in 0..per_hive {
                        let file = if rng.below(4) == 0 { "small.bin" } else { "big.bin" };
                        let run = sync_cancel(&hive, file, delay(&mut rng));
                        if run.problem.is_some() && runs.iter().all(|r: &SyncCancel| r.problem.is_none()) {
                            eprintln!("hive log:\n{}", hive.log());
                        }
                        runs.push(run);
                        // Start the next one from nothing (no job runs: it was cancelled or ended).
                        std::fs::remove_dir_all(hive.repo_dir(REPO)).ok();
                        std::fs::remove_dir_all(locks_dir(&hive)).ok();
                    }
                    runs
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("cancel thread")).collect()
    });
    let problems: Vec<&str> = runs.iter().filter_map(|r| r.problem.as_deref()).collect();
    assert!(problems.is_empty(), "seed {seed}: {} of {} cancels:\n{}", problems.len(), runs.len(), problems.join("\n"));
    let mid_body = runs.iter().filter(|r| r.status == 200 && r.partial > 0).count();
    let cancelled = runs.iter().filter(|r| r.status == 200).count();
    let latest = runs.iter().filter(|r| r.status == 200).map(|r| (r.delay, r.file)).max();
    eprintln!(
        "chaos: {} synchronous cancels ({cancelled} cancelled, {mid_body} with bytes on disk, latest {latest:?}): \
         nothing written and no task alive after DELETE answered",
        runs.len()
    );
    assert!(
        mid_body >= runs.len() / 4,
        "seed {seed}: only {mid_body} of {} cancels hit a download with bytes on disk",
        runs.len()
    );
}

#[test]
fn concurrent_cancels_agree_on_the_final_status() {
    let hub = FakeHub::start(HubConfig { rate: 64 << 10, ..HubConfig::default() });
    hub.add_repo(RepoSpec::new(REPO).lfs("slow.bin", 16 << 20));
    let hive = Hive::builder().hub(&hub).spawn();
    for _ in 0..5 {
        let job = hive.start_download(REPO, "slow.bin");
        hive.sse(&job).until(TIMEOUT, |f| f.event.name() == "progress");
        let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
            let calls: Vec<_> = (0..8).map(|_| s.spawn(|| hive.delete(&format!("/v1/jobs/{job}")))).collect();
            calls.into_iter().map(|c| c.join().expect("DELETE thread")).collect()
        });
        let ok = answers.iter().filter(|(s, _)| *s == 200).count();
        assert_eq!(ok, 1, "exactly one DELETE cancels: {answers:?}");
        for (status, body) in &answers {
            assert_eq!(body["status"], "cancelled", "{status} {body}: a 409 reports the final status, never `running`");
        }
    }
    assert_eq!(hive.get("/health").1["live_tasks"], 0);
}
