//! The hive's own page in a real headless Chromium (Debian's `chromium`, installed by `.ci/run`):
//! start a download from the form, watch its bar climb, cancel it, see cached models, survive a
//! reload, and stay safe (hostile names stay text, nothing from another origin).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rbee_tests::harness::cdp::{artifacts_dir, Browser, CHROMIUM};
use serde_json::Value;

use crate::harness::fixtures::{hub_with_model, op_download, wait_status, MODEL, REPO};
use crate::harness::{Hive, RepoSpec, TIMEOUT};

/// Longest wait for the page to show something.
const SHOWS: Duration = Duration::from_secs(20);

fn chromium() -> Option<PathBuf> {
    rbee_tests::harness::peer::require("chromium", &[CHROMIUM], "the hive page tests")
}

/// Chromium on the hive's page, once its stream is live.
fn open(chromium: &std::path::Path, hive: &Hive) -> Browser {
    let mut browser = Browser::launch(chromium, 1000, 1300);
    browser.open(hive.url());
    browser.wait("document.getElementById('conn')?.dataset.state === 'live'", SHOWS, "a live stream");
    browser
}

/// Types `model` into the Model field the way a person would, and presses `button`.
fn start(browser: &mut Browser, model: &str, button: &str) {
    browser.eval("document.getElementById('model').value = ''; document.getElementById('model').focus()");
    browser.call("Input.insertText", serde_json::json!({ "text": model }));
    browser.eval(&format!("document.getElementById('{button}').click()"));
}

/// The bar of the one job in the live list: (job id, value, max).
fn live_bar(browser: &mut Browser) -> Value {
    browser.eval(
        "(() => { const li = document.querySelector('#live li'); const p = li && li.querySelector('progress');
           return p && p.hasAttribute('value') ? [li.dataset.job, p.value, p.max] : null; })()",
    )
}

#[test]
fn download_progress_and_cancel_from_the_page() {
    let Some(chromium) = chromium() else { return };
    let size = 48 << 20;
    let hub = hub_with_model(size);
    hub.set_rate(2 << 20);
    let mut hive = Hive::builder().hub(&hub).heartbeat_secs(1).arg("--max-parts").arg("1").spawn();
    let mut browser = open(&chromium, &hive);

    start(&mut browser, &format!("{REPO}:{MODEL}"), "download");
    let first = browser.wait(
        "(() => { const p = document.querySelector('#live li progress'); return p && p.value > 0 && p.value; })()",
        SHOWS,
        "a moving bar",
    );
    let bar = live_bar(&mut browser);
    let id = bar[0].as_str().expect("the row names its job").to_owned();
    assert_eq!(bar[2].as_f64(), Some(size as f64), "the bar's max is the file's size: {bar}");
    browser.wait(&format!("document.querySelector('#live li progress').value > {first}"), SHOWS, "the bar climbing");
    let stats = browser.eval("document.querySelector('#live li .stats').textContent");
    for part in ["/s", "ETA", "heartbeat"] {
        assert!(stats.as_str().unwrap_or("").contains(part), "the row shows rate, ETA and heartbeat age: {stats}");
    }
    let conn = hub.wait_for_connection(0, TIMEOUT).expect("a CDN connection");
    assert!(conn.closed_at.is_none(), "the download ended before the cancel: {conn:?}");

    let click = Instant::now();
    browser.eval("document.querySelector('#live li button.cancel').click()");
    let closed = hub.wait_closed(0, TIMEOUT).expect("the CDN connection was never closed");
    let lag = closed.saturating_duration_since(click);
    assert!(lag <= Duration::from_secs(1), "the hub's connection closed {lag:?} after the click");
    assert!(hub.connections()[0].cancelled_mid_body(), "{:?}", hub.connections()[0]);
    assert_eq!(wait_status(&hive, &id, "cancelled")["status"], "cancelled");
    let row = format!("document.querySelector('#finished [data-job=\"{id}\"]')");
    let said = browser.wait(
        &format!("{row}?.querySelector('.status').textContent === 'cancelled' && {row}.textContent"),
        Duration::from_secs(1) + SHOWS,
        "the row saying cancelled",
    );
    assert!(said.as_str().unwrap_or("").contains("resumable"), "the cancelled row keeps its partial size: {said}");
    assert_eq!(browser.eval("document.querySelectorAll('#live li').length"), 0, "the job left the live list");

    // The hive goes away: the page says so.
    hive.kill();
    browser.wait("document.getElementById('conn').dataset.state === 'gone'", SHOWS, "the hive gone");
}

#[test]
fn a_small_download_shows_in_the_cache_and_hostile_names_stay_text() {
    let Some(chromium) = chromium() else { return };
    let hub = hub_with_model(256 << 10);
    let hive = Hive::spawn(&hub);
    let mut browser = open(&chromium, &hive);

    start(&mut browser, &format!("{REPO}:{MODEL}"), "download");
    let row = format!("document.querySelector('#models li[data-repo=\"{REPO}\"][data-file=\"{MODEL}\"]')");
    browser.wait(&format!("{row}?.querySelector('button.del')"), SHOWS, "the model under cached models");
    let text = browser.eval(&format!("{row}.textContent"));
    assert!(
        text.as_str().unwrap_or("").contains("256.0 KiB") && text.as_str().unwrap_or("").contains("main"),
        "{text}"
    );
    browser.wait(
        "document.querySelector('#finished li .status')?.textContent === 'completed'",
        SHOWS,
        "the job completed",
    );

    // Dry run: the plan, and nothing fetched.
    let fetched = hub.stats().connections.len();
    start(&mut browser, &format!("{REPO}:config.json"), "dry");
    let plan = browser.wait(
        "!document.getElementById('plan').hidden && document.getElementById('plan').textContent",
        SHOWS,
        "the plan",
    );
    assert!(plan.as_str().unwrap_or("").contains("config.json"), "{plan}");
    assert_eq!(hub.stats().connections.len(), fetched, "a dry run fetched a file");

    // Delete asks first; "Keep" keeps it.
    browser.eval(&format!("{row}.querySelector('button.del').click()"));
    browser.wait(
        &format!("{row}.querySelector('button.danger')?.textContent === 'Really delete'"),
        SHOWS,
        "the question",
    );
    browser.eval(&format!("{row}.querySelector('button.quiet').click()"));
    browser.wait(&format!("{row}?.querySelector('button.del')"), SHOWS, "the model kept");
    assert!(hive.repo_dir(REPO).join("snapshots").exists());

    // A hostile name is shown as text, never as markup.
    let hostile = "rbee-test/x:<img src=x onerror=window.pwned=1>.gguf";
    start(&mut browser, hostile, "download");
    browser.wait(
        &format!("document.body.textContent.includes({:?})", "<img src=x onerror=window.pwned=1>"),
        SHOWS,
        "the hostile name as text",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), 0, "markup from a name");
    assert_eq!(browser.eval("typeof window.pwned"), "undefined", "script from a name ran");

    // Nothing from another origin, and the page's own files are few and small.
    let resources = browser.eval(
        "performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')).map(e => e.name)",
    );
    let origin = hive.url().trim_end_matches('/').to_owned();
    let names: Vec<&str> = resources.as_array().expect("entries").iter().filter_map(Value::as_str).collect();
    assert!(names.iter().all(|n| n.starts_with(&origin)), "a resource from another origin: {names:?}");
    let assets = names.iter().filter(|n| !n.contains("/v1/")).count();
    assert!(assets <= 3, "the page needs at most 3 requests (HTML, script, style): {names:?}");
    let headers = browser.eval(
        "fetch('/').then(r => [r.headers.get('content-security-policy'), r.headers.get('x-content-type-options'), r.headers.get('referrer-policy')])",
    );
    assert!(headers[0].as_str().unwrap_or("").starts_with("default-src 'self'"), "{headers}");
    assert_eq!((headers[1].as_str(), headers[2].as_str()), (Some("nosniff"), Some("no-referrer")));

    // Readable at 360 px: nothing wider than the screen.
    browser.viewport(360, 740);
    let width = browser.eval("document.documentElement.scrollWidth");
    assert!(width.as_u64().is_some_and(|w| w <= 360), "the page is {width} px wide at 360 px");
    browser.viewport(1000, 1160);

    // Screenshot with a download in flight, the finished jobs and the cached model.
    hub.add_repo(RepoSpec::demo("rbee-test/bigger-model", 256 << 20));
    hub.set_rate(256 << 10);
    let (_, created) = hive.post_job(&op_download("rbee-test/bigger-model", MODEL));
    let id = created["job_id"].as_str().expect("a job id").to_owned();
    browser.wait(
        &format!("document.querySelector('[data-job=\"{id}\"] progress')?.value > 8e6"),
        SHOWS,
        "the second bar moving",
    );
    browser.eval("document.activeElement.blur(); window.scrollTo(0, 0)");
    let shot = artifacts_dir().join("hive-page.png");
    browser.screenshot(&shot);
    eprintln!("page: screenshot at {}", shot.display());
    // The same in the dark, and on a 360 px phone (artifacts to look at).
    browser.call(
        "Emulation.setEmulatedMedia",
        serde_json::json!({ "features": [{ "name": "prefers-color-scheme", "value": "dark" }] }),
    );
    browser.screenshot(&artifacts_dir().join("hive-page-dark.png"));
    browser.viewport(360, 740);
    browser.screenshot(&artifacts_dir().join("hive-page-360.png"));
    hive.delete(&format!("/v1/jobs/{id}"));
}

#[test]
fn a_reload_mid_download_resumes_the_bar_without_duplicates() {
    let Some(chromium) = chromium() else { return };
    let hub = hub_with_model(32 << 20);
    hub.set_rate(1 << 20);
    let hive = Hive::builder().hub(&hub).many_streams(64).spawn();
    let id = hive.start_download(REPO, MODEL);
    let mut browser = open(&chromium, &hive);
    let row = format!("document.querySelector('[data-job=\"{id}\"] progress')");
    let before = browser.wait(&format!("{row}?.value > 0 && {row}.value"), SHOWS, "a moving bar").as_f64().unwrap();

    browser.eval("window.beforeReload = true; location.reload()");
    browser.wait(
        "!window.beforeReload && document.readyState === 'complete' && document.getElementById('conn')?.dataset.state === 'live'",
        SHOWS,
        "the stream after the reload",
    );
    let resumed = browser.eval(&format!("{row}?.value")).as_f64().unwrap_or(0.0);
    assert!(resumed >= before, "the bar went back after the reload: {before} → {resumed}");
    browser.wait(&format!("{row}.value > {resumed}"), SHOWS, "the bar climbing after the reload");
    assert_eq!(browser.eval(&format!("document.querySelectorAll('[data-job=\"{id}\"]').length")), 1, "one row per job");
    let from = browser.eval("document.getElementById('conn').dataset.from");
    assert!(
        from.as_str().and_then(|f| f.parse::<u64>().ok()).is_some_and(|f| f > 0),
        "the reloaded page opened its stream after its last event (`?last_event_id=`): {from}"
    );

    // Its partial file is listed under cached models; deleting it while the job holds it is a
    // 409 the page shows with the job that holds it.
    let model = format!("document.querySelector('#models li[data-file=\"{MODEL}\"]')");
    browser.wait(&format!("{model}?.querySelector('button.del')"), SHOWS, "the partial under cached models");
    browser.eval(&format!("{model}.querySelector('button.del').click()"));
    browser.wait(&format!("{model}.querySelector('button.danger')"), SHOWS, "the question");
    browser.eval(&format!("{model}.querySelector('button.danger').click()"));
    let why = browser.wait(&format!("{model}.querySelector('.why').textContent.startsWith('In use') && {model}.querySelector('.why').textContent"), SHOWS, "the 409");
    let why = why.as_str().unwrap_or("");
    assert!(
        why.contains(&id) && why.contains("that job is download"),
        "the page names the job holding the file: {why}"
    );
    hive.delete(&format!("/v1/jobs/{id}"));
}

/// Presses a key in the page (as a keyboard would: the focused element gets it).
fn press(browser: &mut Browser, key: &str, code: u32) {
    for kind in ["keyDown", "keyUp"] {
        let text = if kind == "keyDown" && key == "Enter" { "\r" } else { "" };
        let event =
            serde_json::json!({ "type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code, "text": text });
        browser.call("Input.dispatchKeyEvent", event);
    }
}

#[test]
fn on_a_token_hive_the_page_asks_once_and_streams_with_a_bearer_header() {
    let Some(chromium) = chromium() else { return };
    let hub = hub_with_model(32 << 20);
    hub.set_rate(1 << 20);
    let token = "page-test-token-5f3a9c";
    let hive = Hive::builder().hub(&hub).token(token).heartbeat_secs(1).arg("--max-parts").arg("1").spawn();
    let mut browser = Browser::launch(&chromium, 1000, 1300);
    browser.open(hive.url());
    browser.wait(
        "!document.getElementById('token-box').hidden && document.activeElement.id === 'token'",
        SHOWS,
        "the question for the token, focused",
    );

    // Keyboard only: type the token, Enter; type the model, Enter.
    browser.call("Input.insertText", serde_json::json!({ "text": token }));
    press(&mut browser, "Enter", 13);
    browser.wait("document.getElementById('conn').dataset.state === 'live'", SHOWS, "a live stream with the token");
    browser.eval("document.getElementById('model').focus()");
    browser.call("Input.insertText", serde_json::json!({ "text": format!("{REPO}:{MODEL}") }));
    press(&mut browser, "Enter", 13);
    let first = browser.wait(
        "(() => { const p = document.querySelector('#live li progress'); return p && p.value > 0 && p.value; })()",
        SHOWS,
        "a moving bar",
    );
    browser.wait(&format!("document.querySelector('#live li progress').value > {first}"), SHOWS, "the bar climbing");

    // The token lives in this tab's sessionStorage only: no cookie, never in a URL.
    assert_eq!(browser.eval("sessionStorage.getItem('rbee-token')"), token);
    assert_eq!(browser.eval("document.cookie"), "");
    let urls =
        browser.eval("performance.getEntriesByType('resource').map(e => e.name).join(' ') + ' ' + location.href");
    assert!(!urls.as_str().unwrap_or("").contains(token), "the token in a URL: {urls}");
    assert!(!hive.log().contains(token), "the token in the hive's log");

    // A reload asks no more: the token is kept for the tab.
    browser.eval("window.beforeReload = true; location.reload()");
    browser.wait(
        "!window.beforeReload && document.readyState === 'complete' && document.getElementById('conn')?.dataset.state === 'live'",
        SHOWS,
        "the stream after the reload",
    );
    assert_eq!(browser.eval("document.getElementById('token-box').hidden"), true);
    browser.eval("document.querySelector('#live li button.cancel').click()");
    browser.wait(
        "document.querySelector('#finished li .status')?.textContent === 'cancelled'",
        SHOWS,
        "the row saying cancelled",
    );
}

#[test]
fn fifty_jobs_update_at_about_4_hz_in_one_page() {
    let Some(chromium) = chromium() else { return };
    const JOBS: usize = 50;
    let hub = crate::harness::FakeHub::start(crate::harness::HubConfig::default());
    let spec = (0..JOBS).fold(RepoSpec::new("rbee-test/fifty"), |r, i| r.lfs(&format!("f{i:02}.gguf"), 64 << 20));
    hub.add_repo(spec);
    hub.set_rate(256 << 10);
    let hive = Hive::builder().hub(&hub).many_streams(64).spawn();
    let mut browser = open(&chromium, &hive);
    for i in 0..JOBS {
        hive.start_download("rbee-test/fifty", &format!("f{i:02}.gguf"));
    }
    browser.wait(&format!("document.querySelectorAll('#live li progress[value]').length === {JOBS} && [...document.querySelectorAll('#live li progress')].every(p => p.value > 0)"), SHOWS, "50 moving bars");

    // For 4 s: how often each bar moves, and whether the page shows what it receives at once.
    let sample = rbee_tests::harness::page::sample_bars(&mut browser, Duration::from_secs(4));
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (moves, events) = (median(&sample.moves_hz), median(&sample.events_hz));
    eprintln!("page: {JOBS} jobs: {sample:?}");
    eprintln!("page: bars move at {moves:.1} Hz (median) on {events:.1} progress events/s per job");
    assert_eq!(sample.moves_hz.len(), JOBS);
    // The page keeps up: what arrives is drawn within its 100 ms drawing period, with slack for
    // a loaded 2-core machine (the page's own timer lateness is printed above, not judged: it
    // measures the machine as much as the page).
    assert!(sample.stale_ms < 1000.0, "the page fell behind: a progress went {:.0} ms unshown", sample.stale_ms);
    // Bars move with what the hive reports: 3.8 Hz on 4 events/s on a quiet machine
    // (`rbee-bench page`, BENCHMARKS.md §10, where the figure is judged); here, with the rest of
    // the suite beside it on 2 cores, at least half as often (2.2 Hz was seen under load).
    assert!(events >= 1.5, "the hive reported progress at only {events:.1} Hz per job");
    assert!(moves >= 0.5 * events.min(4.0), "bars move at {moves:.1} Hz on {events:.1} events/s");
    for job in hive.get("/v1/jobs").1.as_array().expect("jobs") {
        hive.delete(&format!("/v1/jobs/{}", job["job_id"].as_str().unwrap_or_default()));
    }
}

#[test]
fn the_page_is_served_to_its_own_origin_only() {
    let hub = hub_with_model(1 << 10);
    let hive = Hive::builder().hub(&hub).token("page-token-x-16chars").spawn();
    let url = hive.url().trim_end_matches('/');
    // Its three files need no token (they hold no secret); everything else still does.
    for (path, kind) in [("", "text/html"), ("page.js", "text/javascript"), ("page.css", "text/css")] {
        let res = crate::harness::http::request("GET", &format!("{url}/{path}"), &[], None).expect("GET");
        assert_eq!(res.status, 200, "/{path}");
        assert!(res.header("Content-Type").is_some_and(|t| t.starts_with(kind)), "/{path}");
        assert!(res.header("Content-Security-Policy").is_some_and(|c| c.starts_with("default-src 'self'")));
        assert!(res.header("Content-Security-Policy").is_some_and(|c| c.contains("frame-ancestors 'none'")));
        assert_eq!(res.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(res.header("Referrer-Policy"), Some("no-referrer"));
    }
    for path in ["v1/hive", "v1/events", "v1/jobs"] {
        let res = crate::harness::http::request("GET", &format!("{url}/{path}"), &[], None).expect("GET");
        assert_eq!(res.status, 401, "/{path} without the token");
    }
    // A rebinding name or a foreign page gets no page either (the guard, as for every route).
    for headers in
        [[("Host", "rebind.test")], [("Origin", "http://127.0.0.2:8000")], [("Sec-Fetch-Site", "cross-site")]]
    {
        let res = crate::harness::http::request("GET", url, &headers, None).expect("GET");
        assert_eq!(res.status, 403, "{headers:?}");
    }
}
