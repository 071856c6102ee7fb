//! Reading the hive's page in a [`Browser`]: how often its job bars move, and whether it keeps up
//! with its stream (shared by `tests/e2e/page.rs` and `rbee-bench page`).

use std::time::Duration;

use serde_json::Value;

use super::cdp::Browser;

/// What [`sample_bars`] saw.
#[derive(Debug, Clone)]
pub struct BarSample {
    /// Per live job: how many times a second its bar moved.
    pub moves_hz: Vec<f64>,
    /// Per live job: how many `progress` events a second the page received for it.
    pub events_hz: Vec<f64>,
    /// The longest a received `progress` went unshown by its bar (ms): the page falling behind.
    pub stale_ms: f64,
    /// The latest a 50 ms page timer ran (ms): a busy main thread.
    pub late_ms: f64,
}

/// Wraps the page's event handler (its functions are globals) to note each job's last `progress`,
/// then every 50 ms for `window`, per bar: did it move, and how long has it shown less than the
/// last bytes received (single-file jobs: the bar shows the file's bytes).
const SAMPLER: &str = r"new Promise((done) => {
  const got = {}, count = {}, orig = onEvent;
  onEvent = function (name, id, data) {
    if (name === 'progress') {
      const d = JSON.parse(data);
      if (!d.file.startsWith('∑')) { got[d.job_id] = { bytes: d.bytes, at: performance.now() }; count[d.job_id] = (count[d.job_id] || 0) + 1; }
    }
    return orig(name, id, data);
  };
  const rows = [...document.querySelectorAll('#live li[data-job]')];
  const bars = rows.map((li) => li.querySelector('progress'));
  const last = bars.map((b) => b.value), moves = bars.map(() => 0);
  let late = 0, stale = 0, prev = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    late = Math.max(late, now - prev - 50);
    prev = now;
    bars.forEach((b, i) => {
      if (b.value !== last[i]) { moves[i]++; last[i] = b.value; }
      const g = got[rows[i].dataset.job];
      if (g && b.value < g.bytes) stale = Math.max(stale, now - g.at);
    });
  }, 50);
  setTimeout(() => {
    clearInterval(tick);
    onEvent = orig;
    done({ moves, events: rows.map((li) => count[li.dataset.job] || 0), late, stale });
  }, WINDOW_MS);
})";

/// Samples the live bars of the page in `browser` for `window`.
pub fn sample_bars(browser: &mut Browser, window: Duration) -> BarSample {
    let secs = window.as_secs_f64();
    let got = browser.eval(&SAMPLER.replace("WINDOW_MS", &window.as_millis().to_string()));
    let per_sec = |key: &str| -> Vec<f64> {
        got[key].as_array().map(|a| a.iter().filter_map(Value::as_f64).map(|n| n / secs).collect()).unwrap_or_default()
    };
    BarSample {
        moves_hz: per_sec("moves"),
        events_hz: per_sec("events"),
        stale_ms: got["stale"].as_f64().unwrap_or(f64::NAN),
        late_ms: got["late"].as_f64().unwrap_or(f64::NAN),
    }
}
