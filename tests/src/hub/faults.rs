//! Faults injected on demand, and the per-connection throttle.
//!
//! Faults are queued per file name and consumed one request at a time (CDN requests and
//! non-LFS GETs on the hub), so a test can say "the next two downloads of `model.gguf` reset
//! after 1 MiB" and then watch the client recover.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What to do to a response. JSON form (for `POST /_config`): `{"kind":"reset_after","n":1024}`,
/// `{"kind":"wrong_bytes"}`, `{"kind":"status","n":503}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "n", rename_all = "snake_case")]
pub enum Fault {
    /// Send `n` body bytes, then reset the connection (SO_LINGER 0 + close → RST).
    ResetAfter(u64),
    /// Send `n` body bytes, then close cleanly (short of `Content-Length`).
    TruncateAfter(u64),
    /// Send `n` body bytes, then send nothing until the client goes away.
    StallAfter(u64),
    /// Correct length, but bytes flipped so the sha256 mismatches.
    WrongBytes,
    /// Answer with this status and no body.
    Status(u16),
    /// Answer `200` with the whole body even when a `Range` was asked.
    IgnoreRange,
    /// Send `n` body bytes, then trickle one byte a second (a connection alive but useless).
    TrickleAfter(u64),
    /// Declare the file's size everywhere but the body: send no `Content-Length`, then the file
    /// and filler bytes after it, without end, until the client goes away (a disk-filling CDN).
    Endless,
}

impl Fault {
    /// Where the body stops, and how, for the cut faults.
    pub(crate) fn cut(self) -> Option<(u64, Cut)> {
        match self {
            Self::ResetAfter(n) => Some((n, Cut::Reset)),
            Self::TruncateAfter(n) => Some((n, Cut::Truncate)),
            Self::StallAfter(n) => Some((n, Cut::Stall)),
            Self::TrickleAfter(n) => Some((n, Cut::Trickle)),
            _ => None,
        }
    }
}

/// How a cut body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    Reset,
    Truncate,
    Stall,
    Trickle,
}

/// Pending faults per file name, each with a remaining count.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    by_file: HashMap<String, VecDeque<(Fault, usize)>>,
    resolve: VecDeque<(u16, usize)>,
    /// Headers every injected resolve answer carries (`Retry-After`, `RateLimit`).
    pub(crate) resolve_headers: Vec<(String, String)>,
    /// Files served as Xet-backed: `false` through a bridge host, `true` refused over plain HTTP.
    pub(crate) xet: HashMap<String, bool>,
    /// Headers that replace the resolve answer's own, per file (a hostile hub: a bogus
    /// `X-Repo-Commit`, an escape in `ETag`, a `Location` anywhere).
    pub(crate) resolve_override: HashMap<String, Vec<(String, String)>>,
}

impl FaultTable {
    pub(crate) fn push(&mut self, file: &str, fault: Fault, times: usize) {
        if times > 0 {
            self.by_file.entry(file.to_owned()).or_default().push_back((fault, times));
        }
    }

    pub(crate) fn push_resolve(&mut self, status: u16, times: usize) {
        if times > 0 {
            self.resolve.push_back((status, times));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.by_file.clear();
        self.resolve.clear();
        self.resolve_headers.clear();
        self.xet.clear();
        self.resolve_override.clear();
    }

    /// The fault for the next request of `file`, if any (consumes one use).
    pub(crate) fn take(&mut self, file: &str) -> Option<Fault> {
        let queue = self.by_file.get_mut(file)?;
        take_one(queue)
    }

    /// The status for the next resolve request, if any (consumes one use).
    pub(crate) fn take_resolve(&mut self) -> Option<u16> {
        take_one(&mut self.resolve)
    }
}

fn take_one<T: Copy>(queue: &mut VecDeque<(T, usize)>) -> Option<T> {
    let (value, left) = queue.front_mut()?;
    let value = *value;
    *left -= 1;
    if *left == 0 {
        queue.pop_front();
    }
    Some(value)
}

/// Paces one connection at the hub's current rate (re-read before every chunk, so
/// `set_rate` applies to connections already running).
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: u64,
    since: Instant,
    sent: u64,
}

impl Pacer {
    pub(crate) fn new() -> Self {
        Self { rate: 0, since: Instant::now(), sent: 0 }
    }

    /// How many bytes to send next: ~20 ms worth when throttled, 1 MiB when not.
    pub(crate) fn chunk_len(rate: &AtomicU64) -> usize {
        match rate.load(Ordering::Relaxed) {
            0 => super::content::CHUNK,
            r => usize::try_from(r / 50).unwrap_or(usize::MAX).clamp(1, super::content::CHUNK),
        }
    }

    /// When the next `n` bytes may go out (`None`: now), and account for them.
    pub(crate) fn reserve(&mut self, rate: &AtomicU64, n: usize) -> Option<Instant> {
        let rate_now = rate.load(Ordering::Relaxed);
        if rate_now != self.rate {
            *self = Self { rate: rate_now, since: Instant::now(), sent: 0 };
        }
        let due = (self.rate > 0).then(|| self.since + Duration::from_secs_f64(self.sent as f64 / self.rate as f64));
        self.sent += n as u64;
        due.filter(|d| *d > Instant::now())
    }

    /// [`Pacer::reserve`] for a link that many connections share: time the link sat idle earns
    /// no credit (a new transfer does not burst at the rate of all the quiet seconds before).
    pub(crate) fn reserve_shared(&mut self, rate: &AtomicU64, n: usize) -> Option<Instant> {
        let now = Instant::now();
        let behind = self.rate > 0
            && self.since + Duration::from_secs_f64(self.sent as f64 / self.rate as f64) + Duration::from_millis(50)
                < now;
        if behind {
            *self = Self { rate: self.rate, since: now, sent: 0 };
        }
        self.reserve(rate, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_in_order() {
        let mut t = FaultTable::default();
        t.push("m", Fault::ResetAfter(5), 2);
        t.push("m", Fault::WrongBytes, 1);
        let got: Vec<_> = (0..4).map(|_| t.take("m")).collect();
        assert_eq!(got, [Some(Fault::ResetAfter(5)), Some(Fault::ResetAfter(5)), Some(Fault::WrongBytes), None]);
        assert_eq!(t.take("other"), None);
    }

    #[test]
    fn a_shared_link_paces_all_its_users_together() {
        let rate = AtomicU64::new(1000);
        let mut link = Pacer::new();
        let start = Instant::now();
        // Two connections take 100 bytes each in turn: the 10th chunk is due after 900 bytes.
        let dues: Vec<_> = (0..10).map(|_| link.reserve_shared(&rate, 100)).collect();
        let last = dues[9].expect("paced");
        assert!(last >= start + Duration::from_millis(880), "{:?}", last - start);
        // Idle time earns no burst credit.
        let mut idle = Pacer { rate: 1000, since: start - Duration::from_secs(60), sent: 100 };
        idle.reserve_shared(&rate, 100);
        assert!(idle.reserve_shared(&rate, 100).is_some_and(|d| d > Instant::now()), "no burst after idling");
    }

    #[test]
    fn fault_json_form() {
        let f: Fault = serde_json::from_str(r#"{"kind":"stall_after","n":7}"#).expect("json");
        assert_eq!(f, Fault::StallAfter(7));
        let f: Fault = serde_json::from_str(r#"{"kind":"ignore_range"}"#).expect("json");
        assert_eq!(f, Fault::IgnoreRange);
        let f: Fault = serde_json::from_str(r#"{"kind":"endless"}"#).expect("json");
        assert_eq!(f, Fault::Endless);
    }
}
