//! A deterministic stand-in for huggingface.co on loopback.
//!
//! Two listeners: the **hub** (tide) answers `resolve` and `api/models` like huggingface.co, and
//! redirects LFS files to the **CDN**, a small hand-written HTTP/1.1 server (one request per
//! connection) whose every connection open, byte and close is recorded. Rate and faults change at
//! runtime; tests read [`Stats`] and wait on them instead of sleeping.
//!
//! ```no_run
//! use rbee_tests::hub::{FakeHub, Fault, HubConfig, RepoSpec};
//! use std::time::Duration;
//! let hub = FakeHub::start(HubConfig::default());
//! hub.add_repo(RepoSpec::demo("org/model", 8 << 20));
//! hub.set_fault("model.gguf", Fault::ResetAfter(1 << 20), 1);
//! // ... point HF_ENDPOINT at hub.endpoint() and download ...
//! assert!(hub.wait_for_bytes(8 << 20, Duration::from_secs(10)));
//! ```

mod api;
mod body;
mod cdn;
mod content;
mod faults;
mod repos;
mod sha1;
mod stats;
mod tree;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use content::{FileSpec, RepoSpec};
pub use faults::Fault;
pub use stats::{CloseReason, Connection, HubRequest, Stats};

use content::FileData;
use faults::{FaultTable, Pacer};
use repos::Repos;
use stats::Recorder;

/// How to start a [`FakeHub`].
#[derive(Debug, Clone, Default)]
pub struct HubConfig {
    /// Hub port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// CDN port on 127.0.0.1 (0: any free port).
    pub cdn_port: u16,
    /// Bytes/s per CDN connection (0: unthrottled).
    pub rate: u64,
    /// Bytes/s over all CDN connections together, as one shared link (0: unthrottled): however
    /// many parts a download opens, the link carries no more.
    pub link_rate: u64,
    /// The token gated repos accept (`None`: any bearer token).
    pub token: Option<String>,
    /// Where resolves redirect LFS files to (`{cdn}/blobs/{org}/{name}/{sha256}`) instead of the
    /// built-in CDN: e.g. an nginx serving the same blobs (the benchmarks' real CDN). Its
    /// connections are not recorded.
    pub cdn: Option<String>,
    /// The address both listeners bind (`None`: 127.0.0.1): e.g. the host end of a test's veth
    /// pair, so a hive in another network namespace can reach it (`harness::remote`).
    pub bind: Option<std::net::IpAddr>,
}

/// State shared by the hub routes, the CDN and the [`FakeHub`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) repos: RwLock<Repos>,
    pub(crate) faults: Mutex<FaultTable>,
    pub(crate) rate: AtomicU64,
    pub(crate) link_rate: AtomicU64,
    /// The one pacer every CDN connection reserves its bytes from, at `link_rate`.
    pub(crate) link: Mutex<Pacer>,
    pub(crate) token: Option<String>,
    pub(crate) cdn_url: String,
    pub(crate) recorder: Recorder,
}

impl Shared {
    pub(crate) fn repos(&self) -> std::sync::RwLockReadGuard<'_, Repos> {
        self.repos.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, FaultTable> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many bytes a connection sends next: ~20 ms worth at the tighter of the two rates.
    pub(crate) fn chunk_len(&self) -> usize {
        Pacer::chunk_len(&self.rate).min(Pacer::chunk_len(&self.link_rate))
    }

    /// When `n` bytes may go out over the shared link (`None`: now), accounted for.
    pub(crate) fn reserve_link(&self, n: usize) -> Option<Instant> {
        let mut link = self.link.lock().unwrap_or_else(PoisonError::into_inner);
        link.reserve_shared(&self.link_rate, n)
    }
}

/// What the hub knows about one file at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The commit the revision resolved to.
    pub commit: String,
    /// Size in bytes.
    pub size: u64,
    /// Stored in LFS.
    pub lfs: bool,
    /// Hex sha256 of the content.
    pub sha256: String,
    /// The ETag huggingface.co gives it (sha256 for LFS, git blob sha1 otherwise), unquoted.
    pub etag: String,
}

/// A running fake hub; stops (and drops every CDN connection) on `Drop`.
#[derive(Debug)]
pub struct FakeHub {
    shared: Arc<Shared>,
    endpoint: String,
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl FakeHub {
    /// Bind both listeners on 127.0.0.1 and serve on background threads.
    ///
    /// # Panics
    /// When a port cannot be bound.
    pub fn start(config: HubConfig) -> Self {
        Self::try_start(config).expect("fake hub: bind 127.0.0.1")
    }

    /// [`FakeHub::start`], reporting bind errors.
    ///
    /// # Errors
    /// When a port cannot be bound.
    pub fn try_start(config: HubConfig) -> std::io::Result<Self> {
        let ip = config.bind.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        let hub = TcpListener::bind((ip, config.port))?;
        let cdn = TcpListener::bind((ip, config.cdn_port))?;
        let endpoint = format!("http://{}", hub.local_addr()?);
        let shared = Arc::new(Shared {
            repos: RwLock::default(),
            faults: Mutex::default(),
            rate: AtomicU64::new(config.rate),
            link_rate: AtomicU64::new(config.link_rate),
            link: Mutex::new(Pacer::new()),
            token: config.token,
            cdn_url: config.cdn.clone().unwrap_or(format!("http://{}", cdn.local_addr()?)),
            recorder: Recorder::new(),
        });
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let mut threads = cdn::spawn(shared.clone(), cdn, &stopped)?;
        threads.push(api::spawn(shared.clone(), hub, stopped)?);
        Ok(Self { shared, endpoint, stop: Some(stop), threads })
    }

    /// A hub with [`FakeHub::add_default_repo`] already added.
    pub fn with_default_repo() -> Self {
        let hub = Self::start(HubConfig::default());
        hub.add_default_repo();
        hub
    }

    /// `http://127.0.0.1:PORT`, what `HF_ENDPOINT` should be.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `http://127.0.0.1:PORT` of the CDN.
    pub fn cdn_url(&self) -> &str {
        &self.shared.cdn_url
    }

    /// Add a repo, or another commit of one (its refs then move to it). Digests are computed
    /// in the background right away.
    pub fn add_repo(&self, spec: RepoSpec) {
        let files = self.shared.repos.write().unwrap_or_else(PoisonError::into_inner).add(&spec);
        std::thread::spawn(move || {
            for f in &files {
                let _ = f.etag();
            }
        });
    }

    /// Adds and returns `rbee-test/tiny-model`: a 4 MiB LFS `model.gguf` and a `config.json`.
    pub fn add_default_repo(&self) -> RepoSpec {
        let spec = RepoSpec::demo("rbee-test/tiny-model", 4 << 20);
        self.add_repo(spec.clone());
        spec
    }

    fn file(&self, repo: &str, revision: Option<&str>, file: &str) -> Arc<FileData> {
        let repos = self.shared.repos();
        let r = repos.repo(repo).unwrap_or_else(|_| panic!("fake hub: no repo `{repo}`"));
        let rev = revision.unwrap_or_else(|| r.default_revision());
        r.file(rev, file).unwrap_or_else(|e| panic!("fake hub: `{repo}@{rev}/{file}`: {}", e.code()))
    }

    /// The content of a (small) file at the default revision (`main`).
    pub fn file_bytes(&self, repo: &str, file: &str) -> Vec<u8> {
        self.file(repo, None, file).bytes()
    }

    /// Hex sha256 of a file at the default revision.
    pub fn sha256(&self, repo: &str, file: &str) -> String {
        self.file(repo, None, file).sha256().to_owned()
    }

    /// Everything about a file at a revision (`None` for unknown repo / revision / file).
    pub fn file_info(&self, repo: &str, revision: &str, file: &str) -> Option<FileInfo> {
        let f = self.shared.repos().repo(repo).ok()?.file(revision, file).ok()?;
        let (sha256, etag) = (f.sha256().to_owned(), f.etag().to_owned());
        Some(FileInfo { commit: f.commit.clone(), size: f.size, lfs: f.lfs, sha256, etag })
    }

    /// The commit the default revision of `repo` points at.
    pub fn commit(&self, repo: &str) -> String {
        let repos = self.shared.repos();
        let r = repos.repo(repo).unwrap_or_else(|_| panic!("fake hub: no repo `{repo}`"));
        r.commit_of(r.default_revision()).expect("default revision").to_owned()
    }

    /// Bytes/s per CDN connection (0: unthrottled); applies to running connections too.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.shared.rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// Bytes/s over all CDN connections together (0: unthrottled); applies to running ones too.
    pub fn set_link_rate(&self, bytes_per_sec: u64) {
        self.shared.link_rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// The current rate.
    pub fn rate(&self) -> u64 {
        self.shared.rate.load(Ordering::Relaxed)
    }

    /// Apply `fault` to the next `times` CDN / non-LFS GET requests of files named `file`
    /// (queued after faults already set for it).
    pub fn set_fault(&self, file: &str, fault: Fault, times: usize) {
        self.shared.faults().push(file, fault, times);
    }

    /// Answer the next `times` resolve requests (HEAD or GET) with `status`.
    pub fn set_resolve_fault(&self, status: u16, times: usize) {
        self.shared.faults().push_resolve(status, times);
    }

    /// Answer the next `times` resolve requests with `429` and `headers` (e.g. `Retry-After`,
    /// or huggingface.co's `RateLimit: "resolvers";r=0;t=2`).
    pub fn set_rate_limit(&self, times: usize, headers: &[(&str, &str)]) {
        let mut faults = self.shared.faults();
        faults.resolve_headers = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        faults.push_resolve(429, times);
    }

    /// Serve the LFS file `file` as Xet-backed: its resolve answer carries `X-Xet-Hash`, a `Link`
    /// to xet-auth and a `Location` on a bridge host of another origin, which redirects on to the
    /// CDN — or, with `refuse_http`, answers `400` (the file is only available through Xet).
    pub fn set_xet(&self, file: &str, refuse_http: bool) {
        self.shared.faults().xet.insert(file.to_owned(), refuse_http);
    }

    /// Answer every resolve of `file` with `headers` in place of its own (e.g. a bogus
    /// `X-Repo-Commit: refs/heads/x`, an `ETag` holding an escape sequence, or a `Location`
    /// elsewhere, which also makes the answer a `302`).
    pub fn set_resolve_headers(&self, file: &str, headers: &[(&str, &str)]) {
        let headers = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.shared.faults().resolve_override.insert(file.to_owned(), headers);
    }

    /// Forget every pending fault.
    pub fn clear_faults(&self) {
        self.shared.faults().clear();
    }

    /// A snapshot of the counters. Bytes are booked just after each write returns, so a client
    /// can hold the last chunk before it is counted: wait ([`FakeHub::wait_closed`],
    /// [`FakeHub::wait_all_closed`]) before asserting exact totals.
    pub fn stats(&self) -> Stats {
        self.shared.recorder.snapshot()
    }

    /// Every CDN connection so far.
    pub fn connections(&self) -> Vec<Connection> {
        self.stats().connections
    }

    /// Wait until `pred` holds on the counters (re-checked on every change); false on timeout.
    pub fn wait_until(&self, timeout: Duration, pred: impl FnMut(&Stats) -> bool) -> bool {
        self.shared.recorder.wait_until(timeout, pred)
    }

    /// Wait until at least `n` body bytes (CDN + hub) went out.
    pub fn wait_for_bytes(&self, n: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.total_bytes() >= n)
    }

    /// Wait until CDN connection `id` exists (ids count from 0), and return it.
    pub fn wait_for_connection(&self, id: u64, timeout: Duration) -> Option<Connection> {
        let mut found = None;
        self.wait_until(timeout, |s| {
            found = s.connections.get(id as usize).cloned();
            found.is_some()
        });
        found
    }

    /// Wait until CDN connection `id` is closed; returns when the server saw it close.
    pub fn wait_closed(&self, id: u64, timeout: Duration) -> Option<Instant> {
        let mut at = None;
        self.wait_until(timeout, |s| {
            at = s.connections.get(id as usize).and_then(|c| c.closed_at);
            at.is_some()
        });
        at
    }

    /// Wait until no CDN connection is open.
    pub fn wait_all_closed(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.open_connections == 0)
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
