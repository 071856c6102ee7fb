//! The adaptive connection count of a download in parts: one connection while the hive itself is
//! what limits the pace, more while more pay (probes that double the count, kept when the
//! aggregate rose by [`RISE`]), never more than the job's cap, and never more than a bandwidth
//! cap leaves room for. When the first connection leaves the hive so idle that the cap's worth
//! of connections like it would keep it busy at most [`FAR`] × [`BUSY`], the link is far from
//! the hive's limits: the first probe opens them all at once (as aria2c opens its 16), instead of
//! 4, then 8, then 16 (half a second lost on a CDN that paces each connection). Pure arithmetic over
//! what the controller samples ([`Sample`]): the simulation tests drive it without a network.

use std::time::{Duration, Instant};

/// How often the controller looks at progress and throughput.
pub(super) const TICK: Duration = Duration::from_millis(25);
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
/// The first connection's share of the hive's CPU overstates each of many connections' share
/// (the controller's ticks, the progress events, a lone worker's hashing from memory cost about
/// the same at 1 or 16): measured at 16 MiB/s each, 0.06 cores for one, 0.65 for sixteen. The
/// first widening opens every connection the cap allows at once while that many at the first
/// one's share would keep at most this many times [`BUSY`] busy.
const FAR: f64 = 2.0;
/// Wait before probing again after a probe that did not pay (doubles each time).
const REPROBE: Duration = Duration::from_secs(1);

/// The adaptive connection count: one connection while the hive itself is what limits the pace,
/// more while more pay.
pub(super) struct Widen {
    /// Workers wanted now.
    pub(super) n: usize,
    cap: usize,
    /// The bandwidth cap over this download, bytes/s: never more connections than it leaves
    /// room for at the rate each one gets.
    rate_cap: Option<f64>,
    /// How long throughput is measured: [`WINDOW`], longer under a low cap ([`window_for`]).
    window_len: Duration,
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
    /// [`Sample::paced`] when the last window closed.
    paced_seen: Duration,
    /// The bandwidth cap made readers wait in the last window: it, not the connection count,
    /// sets the pace (a connection that seemed slow was only starved of CPU, or still starting).
    cap_binds: bool,
}

/// What the controller does after a measuring window.
pub(super) enum Change {
    /// Start this many more workers.
    Widen(usize),
    /// The probe made it no faster: back to this many.
    Back(usize),
}

/// What the controller sees at a tick.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    at: Instant,
    /// Bytes received so far.
    received: u64,
    /// Every worker got its first byte and the extra ones left.
    settled: bool,
    /// The hive's CPU time so far.
    cpu: Option<Duration>,
    /// Cores this process may run on.
    cores: usize,
    /// How long the bandwidth caps over this download made its readers wait so far.
    paced: Duration,
}

/// The measuring window under a bandwidth cap of `rate_cap` bytes/s: long enough for the cap's
/// pacing (a wait per chunk of up to 256 KiB) to average out over about 8 chunks, within
/// [`WINDOW`]..=1 s.
fn window_for(rate_cap: Option<f64>) -> Duration {
    let paced = |cap: f64| Duration::from_secs_f64((f64::from(2 << 20) / cap.max(1.0)).min(1.0));
    rate_cap.map_or(WINDOW, |cap| paced(cap).max(WINDOW))
}

/// CPU time this process used so far (every thread), if the system says.
pub(super) fn cpu_time() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let time = |t: nix::sys::time::TimeVal| -> Option<Duration> {
        Some(Duration::new(t.tv_sec().try_into().ok()?, (t.tv_usec() * 1000).try_into().ok()?))
    };
    Some(time(usage.user_time())? + time(usage.system_time())?)
}

impl Widen {
    /// One connection now, at most `cap`, within `rate_cap` bytes/s (a bandwidth cap) if any.
    pub(super) fn new(cap: usize, rate_cap: Option<u64>, now: Instant) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let rate_cap = rate_cap.map(|c| c as f64);
        let window_len = window_for(rate_cap);
        Self {
            n: 1,
            cap,
            rate_cap,
            window_len,
            probing: None,
            window: None,
            since: now,
            next_probe: now,
            pause: REPROBE,
            paced_seen: Duration::ZERO,
            cap_binds: false,
        }
    }

    /// Whether to change the number of workers now, `received` bytes in, with `cold` workers
    /// still waiting for their first byte and `workers` running, the bandwidth caps having made
    /// readers wait `paced` so far.
    pub(super) fn step(&mut self, received: u64, (cold, workers): (usize, usize), paced: Duration) -> Option<Change> {
        // Measure once every worker got its first byte and the extra ones left.
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let settled = cold == 0 && workers <= self.n;
        let sample = Sample { at: Instant::now(), received, settled, cpu: cpu_time(), cores, paced };
        self.decide(sample)
    }

    /// The most connections the bandwidth cap leaves room for, each at the rate the current ones
    /// get (`rate` in all; a tenth of a connection's rate is measuring noise): under a cap one
    /// connection already fills, one; under a cap that made readers wait, no more than now.
    fn room(&self, rate: f64) -> usize {
        if self.cap_binds {
            return self.n;
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let fit = |cap: f64| if rate > 0.0 { (cap / (rate / self.n as f64) + 0.1).floor() as usize } else { self.n };
        self.rate_cap.map_or(usize::MAX, fit)
    }

    pub(super) fn decide(
        &mut self,
        Sample { at: now, received, settled, cpu, cores, paced }: Sample,
    ) -> Option<Change> {
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
        if elapsed < if probing { 2 * self.window_len } else { self.window_len } || (probing && !warm) {
            return None;
        }
        self.window = Some((now, received, cpu));
        let rate = (received - b0) as f64 / elapsed.as_secs_f64();
        // Waits of a twentieth of the window (summed over the readers) are more than rounding.
        self.cap_binds = paced.saturating_sub(self.paced_seen) > elapsed / 20;
        self.paced_seen = paced;
        // Cores the hive kept busy (unknown: assume it has room).
        let busy = c0.zip(cpu).map_or(0.0, |(c0, c)| c.saturating_sub(c0).as_secs_f64() / elapsed.as_secs_f64());
        log::debug!(
            "parts: {} workers: {:.1} MiB/s, {busy:.2} cores busy (probing from {:?})",
            self.n,
            rate / f64::from(1 << 20),
            self.probing.map(|(n, r)| (n, r / f64::from(1 << 20)))
        );
        // The most cores the hive may keep busy and still widen.
        let limit = BUSY.min(BUSY_SHARE * cores as f64);
        match self.probing.take() {
            Some((before, base)) if rate < base * RISE => {
                // Not worth it: back, and probe again later.
                (self.n, self.window, self.since) = (before, None, now);
                self.next_probe = now + self.pause;
                self.pause *= 2;
                Some(Change::Back(before))
            }
            // The hive itself (hashing, writing) sets the pace: more connections cannot help.
            _ if busy >= limit => None,
            // It paid: keep them, and probe further at once.
            Some(_) => self.probe(rate, (self.n * 2).min(self.cap), (now, received, cpu)),
            None if now < self.next_probe => None,
            None if self.n == 1 => self.first(rate, busy, limit, (now, received, cpu)),
            None => self.probe(rate, (self.n * 2).min(self.cap), (now, received, cpu)),
        }
    }

    /// The first widening, from one connection that brought `rate` and kept `busy` cores of the
    /// hive busy (under `limit`, the most it may keep busy and still widen).
    fn first(&mut self, rate: f64, busy: f64, limit: f64, start: (Instant, u64, Option<Duration>)) -> Option<Change> {
        let all = self.cap.min(self.room(rate));
        #[allow(clippy::cast_precision_loss)]
        if all > START_PARTS && busy * all as f64 <= FAR * limit {
            // Far from the hive's limits: every connection the cap allows, at once; a probe, kept
            // if the aggregate rose (a link one connection fills goes back to one).
            return self.probe(rate, all, start);
        }
        // The network sets the pace, near enough to the hive's limits to widen in steps:
        // several connections at once (a CDN that caps each one rewards them), then probes.
        let more = START_PARTS.min(all).checked_sub(1).filter(|m| *m > 0)?;
        (self.n, self.window, self.since) = (1 + more, None, start.0);
        Some(Change::Widen(more))
    }

    /// Starts a probe with `to` workers (within the room the bandwidth cap leaves), to be
    /// measured from `start` against `base`, the throughput of the last window.
    fn probe(&mut self, base: f64, to: usize, start: (Instant, u64, Option<Duration>)) -> Option<Change> {
        let to = to.min(self.room(base));
        let more = to.checked_sub(self.n).filter(|m| *m > 0)?;
        self.probing = Some((self.n, base));
        (self.n, self.window, self.since) = (to, Some(start), start.0);
        Some(Change::Widen(more))
    }
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
        run(Widen::new(cap, None, t0), t0, (host_cores, 1), secs, rate, cores)
    }

    /// The same under a bandwidth cap of `limit` bytes/s over the whole download.
    /// Bytes arrive in lumps of `quantum` (the pacer waits per chunk read).
    fn simulate_capped(limit: f64, secs: f64, quantum: u64, rate: impl Fn(usize) -> f64) -> Vec<(f64, usize)> {
        let t0 = Instant::now();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let w = Widen::new(16, Some(limit as u64), t0);
        run(w, t0, (2, quantum), secs, |n| rate(n).min(limit), |_| 0.01)
    }

    fn run(
        mut w: Widen,
        t0: Instant,
        (host_cores, quantum): (usize, u64),
        secs: f64,
        rate: impl Fn(usize) -> f64,
        cores: impl Fn(usize) -> f64,
    ) -> Vec<(f64, usize)> {
        let (mut n, mut received, mut cpu, mut t) = (1usize, 0.0f64, 0.0f64, 0.0f64);
        let mut changes = Vec::new();
        let dt = TICK.as_secs_f64();
        while t < secs {
            t += dt;
            received += rate(n) * dt;
            cpu += cores(n) * dt;
            let sample = Sample {
                at: t0 + Duration::from_secs_f64(t),
                received: received as u64 / quantum * quantum,
                settled: true,
                cpu: Some(Duration::from_secs_f64(cpu)),
                cores: host_cores,
                paced: Duration::ZERO,
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
        assert_eq!(capped.first().map(|c| c.1), Some(16), "an idle core still widens: {capped:?}");
    }

    #[test]
    fn a_capped_connection_far_from_the_hive_limits_opens_every_connection_at_once() {
        // A CDN capping each connection at 16 MiB/s; one costs the hive 1 % of a core, so 16
        // would keep it far under one core busy: all 16 after the first window.
        let changes = simulate(16, 3.0, |n| 16.0 * MIB * n as f64, |n| 0.01 * n as f64);
        assert_eq!(changes.iter().map(|c| c.1).collect::<Vec<_>>(), vec![16], "{changes:?}");
        assert!(changes[0].0 < 0.2, "16 connections within 0.2 s: {changes:?}");
        // As measured on loopback: one connection 8 % of a core, sixteen 68 % (a cost shared by
        // all): 16 at the first one's share would be 1.3 cores, within what 16 really cost.
        let changes = simulate(16, 3.0, |n| 16.0 * MIB * n as f64, |n| 0.04 + 0.04 * n as f64);
        assert_eq!(changes.iter().map(|c| c.1).collect::<Vec<_>>(), vec![16], "{changes:?}");
    }

    #[test]
    fn a_capped_connection_near_the_hive_limits_widens_to_four_then_doubles_while_it_pays() {
        // Eight cores; the first connection costs 16 % of one (each further one 6 %): 16 at the
        // first one's share would keep more than twice a core busy, so the count grows in steps,
        // while the hive has room.
        let changes = simulate_on(8, 16, 3.0, |n| 16.0 * MIB * n as f64, |n| 0.1 + 0.06 * n as f64);
        let counts: Vec<usize> = changes.iter().map(|c| c.1).collect();
        assert_eq!(counts, vec![4, 8, 16], "{changes:?}");
        assert!(changes[2].0 < 1.0, "16 connections within a second: {changes:?}");
    }

    #[test]
    fn every_connection_at_once_that_is_no_faster_goes_back_to_one_and_is_tried_again_later() {
        // One connection fills the link (64 MiB/s however many share it); the hive is idle.
        let changes = simulate(16, 5.0, |_| 64.0 * MIB, |_| 0.01);
        let counts: Vec<usize> = changes.iter().map(|c| c.1).collect();
        assert_eq!(&counts[..4], &[16, 1, 16, 1], "{changes:?}");
        let probes: Vec<f64> = changes.iter().filter(|c| c.1 == 16).map(|c| c.0).collect();
        assert!(probes[1] - probes[0] >= REPROBE.as_secs_f64(), "{changes:?}");
    }

    #[test]
    fn a_probe_that_does_not_pay_goes_back_and_is_tried_again_later() {
        // Each connection capped at 16 MiB/s, the link at 64 MiB/s: four is the most that pays.
        let changes = simulate(16, 6.0, |n| (16.0 * MIB * n as f64).min(64.0 * MIB), |_| 0.2);
        let counts: Vec<usize> = changes.iter().map(|c| c.1).collect();
        assert_eq!(&counts[..3], &[4, 8, 4], "{changes:?}");
        assert!(counts.iter().all(|n| *n == 4 || *n == 8), "{changes:?}");
        // Probes again after a pause that doubles: 1 s, then 2 s.
        let probes: Vec<f64> = changes.iter().filter(|c| c.1 == 8).map(|c| c.0).collect();
        assert!(probes.len() >= 2 && probes.len() <= 3, "{changes:?}");
        assert!(probes[1] - probes[0] >= REPROBE.as_secs_f64(), "{changes:?}");
    }

    #[test]
    fn the_busy_threshold_is_one_core_on_a_host_with_many() {
        // Eight cores: one connection that keeps a whole core busy (hashing) is all the hive can
        // use, though seven more cores idle; one that keeps 90 % of a core busy leaves room.
        let link = |n: usize| 16.0 * MIB * n as f64;
        let busy = simulate_on(8, 16, 3.0, link, |_| 1.05);
        assert_eq!(busy, vec![], "a core busy: stays alone");
        let room = simulate_on(8, 16, 3.0, link, |_| 0.9);
        assert_eq!(room.first().map(|c| c.1), Some(4), "under a core busy: widens {room:?}");
    }

    #[test]
    fn under_a_bandwidth_cap_one_connection_that_fills_it_stays_alone() {
        // 2 MiB/s over the download; the CDN would give each connection 16 MiB/s.
        let changes = simulate_capped(2.0 * MIB, 3.0, 1, |n| 16.0 * MIB * n as f64);
        assert_eq!(changes, vec![], "the cap leaves no room for a second connection");
        // The CDN gives each connection 512 KiB/s: four fill the 2 MiB/s cap, never more.
        let changes = simulate_capped(2.0 * MIB, 4.0, 1, |n| 0.5 * MIB * n as f64);
        let counts: Vec<usize> = changes.iter().map(|c| c.1).collect();
        assert_eq!(counts, vec![4], "{changes:?}");
        // 768 KiB/s each: two fit, a third would not.
        let changes = simulate_capped(2.0 * MIB, 4.0, 1, |n| 0.75 * MIB * n as f64);
        assert_eq!(changes.iter().map(|c| c.1).collect::<Vec<_>>(), vec![2], "{changes:?}");
        // Paced in 256 KiB lumps (whole windows without a byte): still one connection.
        let changes = simulate_capped(2.0 * MIB, 6.0, 256 << 10, |n| 16.0 * MIB * n as f64);
        assert_eq!(changes, vec![], "lumps of the pacer are no room for more");
    }

    #[test]
    fn a_connection_the_cap_made_wait_is_not_joined_however_slow_it_seemed() {
        // Under 2 MiB/s, one connection measured at 0.8 MiB/s (starved of CPU, or its first
        // window took its start): room for two by its rate alone. Whether the cap made its
        // reader wait decides.
        let decide_after = |paced: Duration| {
            let t0 = Instant::now();
            let mut w = Widen::new(16, Some(2 << 20), t0);
            let sample = |secs: f64, paced| Sample {
                at: t0 + Duration::from_secs_f64(secs),
                received: (0.8 * MIB * secs) as u64,
                settled: true,
                cpu: Some(Duration::from_millis(10)),
                cores: 2,
                paced,
            };
            assert!(w.decide(sample(0.0, Duration::ZERO)).is_none(), "the first sample opens the window");
            w.decide(sample(1.5, paced)).map(|c| match c {
                Change::Widen(more) => more,
                Change::Back(_) => 0,
            })
        };
        assert_eq!(decide_after(Duration::ZERO), Some(1), "no wait: the cap leaves room for a second");
        assert_eq!(decide_after(Duration::from_millis(300)), None, "the cap made it wait: it binds");
    }

    #[test]
    fn never_above_the_cap() {
        let changes = simulate(3, 2.0, |n| 16.0 * MIB * n as f64, |_| 0.0);
        assert_eq!(changes.iter().map(|c| c.1).collect::<Vec<_>>(), vec![3], "{changes:?}");
        assert_eq!(simulate(1, 2.0, |n| 16.0 * MIB * n as f64, |_| 0.0), vec![]);
    }
}
