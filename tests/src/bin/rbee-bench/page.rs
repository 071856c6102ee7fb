//! The hive's page in headless Chromium: how long from the hub's first byte of a download to the
//! page's bar moving, and how often 50 bars at once move (and whether the page keeps up).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rbee_tests::harness::cdp::{Browser, CHROMIUM};
use rbee_tests::harness::page::{sample_bars, BarSample};
use rbee_tests::hub::{FakeHub, HubConfig, RepoSpec};

use crate::proc::{note, Ctx, Hive};
use crate::table::{median, percentile, Table};

const REPO: &str = "bench/page";
/// Per CDN connection: slow enough that no download ends during a trial.
const RATE: u64 = 512 << 10;
/// Each file: a minute of transfer at [`RATE`].
const SIZE: u64 = 32 << 20;
const JOBS: usize = 50;

/// Records, per job, the wall-clock ms when its bar first got a value above 0.
const OBSERVER: &str = r"window.__first = {};
new MutationObserver((changes) => {
  const now = Date.now();
  for (const c of changes) {
    const li = c.target.closest && c.target.closest('li[data-job]');
    if (li && c.target.value > 0 && !(li.dataset.job in window.__first)) window.__first[li.dataset.job] = now;
  }
}).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['value'] }); true";

pub(crate) fn run(ctx: &Ctx) -> Result<String> {
    let chromium =
        rbee_tests::harness::peer::find(&[CHROMIUM]).context("chromium is not installed (apt-get install chromium)")?;
    let trials = ctx.pick(20, 3);
    let hub = FakeHub::start(HubConfig { rate: RATE, ..HubConfig::default() });
    let names: Vec<String> = (0..trials.max(JOBS)).map(|i| format!("f{i:03}.gguf")).collect();
    hub.add_repo(names.iter().fold(RepoSpec::new(REPO), |r, n| r.lfs(n, SIZE)));
    // The hub hashes a file the first time it is resolved: not inside a measurement.
    for name in &names {
        hub.sha256(REPO, name);
    }
    let cache = ctx.fresh_dir("page-cache")?;
    let hive = Hive::spawn(ctx, hub.endpoint(), &cache, &["--max-parts", "1", "--max-downloads", "64"])?;
    let mut browser = Browser::launch(&chromium, 1000, 1300);
    browser.open(&hive.url);
    browser.wait("document.getElementById('conn')?.dataset.state === 'live'", Duration::from_secs(20), "a live stream");
    browser.eval(OBSERVER);

    note(format!("page: {trials} trials of hub byte → bar moving"));
    let mut latency = Vec::new();
    for name in &names[..trials] {
        let n = hub.stats().connections.len();
        let id = hive.submit(REPO, name)?;
        let script = format!("window.__first[{id:?}]");
        let seen = browser.wait(&script, Duration::from_secs(20), "the bar moving").as_f64().unwrap_or(f64::NAN);
        let conn = hub.wait_for_connection(n as u64, Duration::from_secs(5)).context("no CDN connection")?;
        let first = conn.first_byte_at.context("the hub sent no byte")?;
        latency.push(seen - wall_ms(first));
        crate::proc::http(&hive.addr, "DELETE", &format!("/v1/jobs/{id}"), None)?;
    }

    note(format!("page: {JOBS} jobs at once"));
    for name in &names[..JOBS] {
        hive.submit(REPO, name)?;
    }
    let all_moving = format!(
        "document.querySelectorAll('#live li progress[value]').length === {JOBS} && \
         [...document.querySelectorAll('#live li progress')].every(p => p.value > 0)"
    );
    browser.wait(&all_moving, Duration::from_secs(30), "50 moving bars");
    let sample = sample_bars(&mut browser, Duration::from_secs(5));
    if sample.moves_hz.len() != JOBS {
        bail!("sampled {} bars, not {JOBS}", sample.moves_hz.len());
    }
    Ok(report(&latency, &sample))
}

/// An `Instant` of this process as wall-clock ms since the epoch (the page's `Date.now()`).
fn wall_ms(at: Instant) -> f64 {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let then = wall - now.saturating_duration_since(at);
    then.duration_since(UNIX_EPOCH).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn report(latency: &[f64], sample: &BarSample) -> String {
    let mut t = Table::new(&["figure", "median", "worst 5 % from", "worst", "note"]);
    t.row(&[
        "hub's first byte → the page's bar moves".to_owned(),
        format!("{:.0} ms", median(latency)),
        format!("{:.0} ms", percentile(latency, 95.0)),
        format!("{:.0} ms", percentile(latency, 100.0)),
        format!(
            "{} trials; the hive reports a file's progress every 250 ms, the page draws at once, then at most every 100 ms",
            latency.len()
        ),
    ]);
    let hz = &sample.moves_hz;
    t.row(&[
        format!("{JOBS} jobs at once: bar moves per second"),
        format!("{:.1} Hz", median(hz)),
        format!("{:.1} Hz", percentile(hz, 5.0)),
        format!("{:.1} Hz", percentile(hz, 0.0)),
        format!("over 5 s, on {:.1} progress events/s per job (median); nominal 4 Hz", median(&sample.events_hz)),
    ]);
    t.row(&[
        format!("{JOBS} jobs at once: longest a received progress went unshown"),
        format!("{:.0} ms", sample.stale_ms),
        String::new(),
        String::new(),
        format!("the page draws at most every 100 ms; a 50 ms page timer ran at most {:.0} ms late", sample.late_ms),
    ]);
    format!(
        "## 10. The hive's page\n\n\
         Headless Chromium (Debian `chromium`, driven over the DevTools pipe) on the hive's page `/`, \
         one `EventSource` on `GET /v1/events`. Latency: the fake hub (in the bench process) timestamps \
         its first body byte of a download started with `POST /v1/jobs`; a `MutationObserver` in the page \
         timestamps (`Date.now()`) the first time that job's `<progress>` gets a value; the difference is \
         on one machine's wall clock. CDN throttled to {} KiB/s per connection, `--max-parts 1`. Then {JOBS} \
         downloads run at once and the page is sampled every 50 ms for 5 s (`harness::page::sample_bars`).\n\n{}",
        RATE >> 10,
        t.done()
    )
}
