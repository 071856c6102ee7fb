//! What the hub saw: bytes sent, every CDN connection (with open / first byte / close times)
//! and every hub request. Tests read snapshots and wait on predicates instead of sleeping.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::faults::Fault;

/// Why a CDN connection ended: the client went away ([`ClientClosed`](Self::ClientClosed),
/// [`ClientError`](Self::ClientError)) while the response was still open, the server finished it
/// ([`Finished`](Self::Finished)), or a fault ended it ([`Reset`](Self::Reset),
/// [`Truncated`](Self::Truncated)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The server wrote the whole response and closed.
    Finished,
    /// The client closed its side (read returned 0) before the response was done.
    ClientClosed,
    /// Reading or writing failed (the client reset the connection) before the response was done.
    ClientError,
    /// A `ResetAfter` fault reset it.
    Reset,
    /// A `TruncateAfter` fault closed it early.
    Truncated,
}

/// One CDN connection (one request: the CDN answers `Connection: close`).
#[derive(Debug, Clone)]
pub struct Connection {
    /// Sequence number, from 0.
    pub id: u64,
    /// Request method (empty when no request head arrived).
    pub method: String,
    /// Request path, query included.
    pub path: String,
    /// The whole request line as received (`GET /blobs/…?… HTTP/1.1`).
    pub request_line: String,
    /// Every request header as received (names lowercase).
    pub headers: Vec<(String, String)>,
    /// The repo file served, when the path named one.
    pub file: Option<String>,
    /// The `Range` header received.
    pub range: Option<String>,
    /// The `Authorization` header received (a token must never reach the CDN).
    pub authorization: Option<String>,
    /// Status answered.
    pub status: Option<u16>,
    /// Fault applied.
    pub fault: Option<Fault>,
    /// Accepted at.
    pub opened_at: Instant,
    /// First body byte written at.
    pub first_byte_at: Option<Instant>,
    /// When the connection ended: the server saw the client go away, or finished writing, or a
    /// fault cut it — `close` says which.
    pub closed_at: Option<Instant>,
    /// Why it ended.
    pub close: Option<CloseReason>,
    /// Body bytes written.
    pub bytes_sent: u64,
}

impl Connection {
    /// Whether `needle` occurs anywhere in what the client sent: request line (path, query) or any
    /// header name or value. A token must never be found here.
    pub fn mentions(&self, needle: &str) -> bool {
        self.request_line.contains(needle) || self.headers.iter().any(|(k, v)| k.contains(needle) || v.contains(needle))
    }

    /// The client closed (or reset) it while the response was still open: what a cancel does.
    pub fn closed_by_client(&self) -> bool {
        matches!(self.close, Some(CloseReason::ClientClosed | CloseReason::ClientError))
    }

    /// A cancel mid-body: closed by the client after at least one body byte went out.
    pub fn cancelled_mid_body(&self) -> bool {
        self.closed_by_client() && self.bytes_sent > 0
    }
}

/// One request the hub (not the CDN) answered.
#[derive(Debug, Clone)]
pub struct HubRequest {
    /// `HEAD`, `GET`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// All headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Status answered.
    pub status: u16,
    /// Received at.
    pub at: Instant,
}

impl HubRequest {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A snapshot of the counters.
#[derive(Debug, Clone)]
pub struct Stats {
    /// When the hub started.
    pub started_at: Instant,
    /// Body bytes written by the CDN.
    pub cdn_bytes: u64,
    /// Body bytes served by the hub itself (non-LFS GETs).
    pub hub_bytes: u64,
    /// CDN connections not yet closed.
    pub open_connections: usize,
    /// Every CDN connection, by id.
    pub connections: Vec<Connection>,
    /// Every hub request, in order.
    pub requests: Vec<HubRequest>,
}

impl Stats {
    /// CDN connections the client closed mid-body ([`Connection::cancelled_mid_body`]).
    pub fn mid_body_cancels(&self) -> usize {
        self.connections.iter().filter(|c| c.cancelled_mid_body()).count()
    }

    /// CDN + hub body bytes.
    pub fn total_bytes(&self) -> u64 {
        self.cdn_bytes + self.hub_bytes
    }

    /// JSON form (times as milliseconds since the hub started), as `GET /_stats` answers.
    pub fn to_json(&self) -> Value {
        let ms = |t: Instant| t.saturating_duration_since(self.started_at).as_secs_f64() * 1000.0;
        let conns: Vec<_> = self.connections.iter().map(|c| json!({
            "id": c.id, "method": c.method, "path": c.path, "file": c.file, "range": c.range,
            "authorization": c.authorization.is_some(), "status": c.status,
            "fault": c.fault, "opened_ms": ms(c.opened_at), "first_byte_ms": c.first_byte_at.map(ms),
            "closed_ms": c.closed_at.map(ms), "close": c.close.map(|r| format!("{r:?}")), "bytes_sent": c.bytes_sent,
        })).collect();
        let reqs: Vec<_> = self
            .requests
            .iter()
            .map(|r| {
                json!({
                    "method": r.method, "path": r.path, "status": r.status, "at_ms": ms(r.at),
                    "range": r.header("range"), "authorization": r.header("authorization").is_some(),
                })
            })
            .collect();
        json!({
            "cdn_bytes": self.cdn_bytes, "hub_bytes": self.hub_bytes,
            "open_connections": self.open_connections, "connections": conns, "requests": reqs,
        })
    }
}

/// The shared, lock-protected counters plus a condvar rung on every change.
#[derive(Debug)]
pub(crate) struct Recorder {
    stats: Mutex<Stats>,
    changed: Condvar,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        let stats = Stats {
            started_at: Instant::now(),
            cdn_bytes: 0,
            hub_bytes: 0,
            open_connections: 0,
            connections: vec![],
            requests: vec![],
        };
        Self { stats: Mutex::new(stats), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn change<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }

    /// A CDN connection was accepted; returns its id.
    pub(crate) fn open(&self) -> u64 {
        self.change(|s| {
            let id = s.connections.len() as u64;
            s.open_connections += 1;
            s.connections.push(Connection {
                id,
                method: String::new(),
                path: String::new(),
                request_line: String::new(),
                headers: vec![],
                file: None,
                range: None,
                authorization: None,
                status: None,
                fault: None,
                opened_at: Instant::now(),
                first_byte_at: None,
                closed_at: None,
                close: None,
                bytes_sent: 0,
            });
            id
        })
    }

    pub(crate) fn update(&self, id: u64, f: impl FnOnce(&mut Connection)) {
        self.change(|s| f(&mut s.connections[id as usize]));
    }

    /// `n` body bytes went out on connection `id`.
    pub(crate) fn sent(&self, id: u64, n: u64) {
        let now = Instant::now();
        self.change(|s| {
            s.cdn_bytes += n;
            let c = &mut s.connections[id as usize];
            c.bytes_sent += n;
            c.first_byte_at.get_or_insert(now);
        });
    }

    pub(crate) fn closed(&self, id: u64, at: Instant, reason: CloseReason) {
        self.change(|s| {
            let c = &mut s.connections[id as usize];
            if c.closed_at.is_none() {
                c.closed_at = Some(at);
                c.close = Some(reason);
                s.open_connections -= 1;
            }
        });
    }

    pub(crate) fn hub_sent(&self, n: u64) {
        self.change(|s| s.hub_bytes += n);
    }

    pub(crate) fn request(&self, r: HubRequest) {
        self.change(|s| s.requests.push(r));
    }

    pub(crate) fn snapshot(&self) -> Stats {
        self.lock().clone()
    }

    /// Wait until `pred` holds (checked on every change); false on timeout.
    pub(crate) fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&Stats) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut stats = self.lock();
        loop {
            if pred(&stats) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            stats = self.changed.wait_timeout(stats, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }
}
