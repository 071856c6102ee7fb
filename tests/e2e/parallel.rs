//! Downloads in parts: a big file travels as byte ranges over several connections at once, which
//! a CDN that caps each connection rewards; every part closes on cancel; a cancel or `kill -9`
//! keeps every finished block and the next download fetches only what is missing; a server that
//! ignores `Range` still works over one stream; an `.incomplete` left by one stream (or
//! huggingface_hub) is taken over; and huggingface_hub scans the cache cleanly throughout.

use std::time::{Duration, Instant};

use rbee_protocol::Event;
use serde_json::json;

use crate::harness::fixtures::{
    assert_published, file_len, hub_with_faulty_model, hub_with_model, hub_with_slow_model, incomplete, partial_len,
    parts_file, wait_for, wait_status, PartMap, MODEL, REPO,
};
use crate::harness::nginx::Nginx;
use crate::harness::python::hf_scan_warnings;
use crate::harness::{CloseReason, FakeHub, Fault, Hive, HubConfig, RepoSpec, TIMEOUT};
use rbee_tests::hub::Connection;

/// Starts a download of [`MODEL`], at most `connections` at once (`None`: the hive's cap).
fn start(hive: &Hive, connections: Option<u32>) -> String {
    let mut op = json!({"operation": "model_download", "hive_id": "localhost", "model": format!("{REPO}:{MODEL}")});
    if let Some(n) = connections {
        op["connections"] = json!(n);
    }
    let (status, body) = hive.post_job(&op);
    assert_eq!(status, 200, "{body}");
    body["job_id"].as_str().expect("job_id").to_owned()
}

/// A hub serving a `size`-byte [`MODEL`] at `rate` bytes/s per connection, and a hive on it.
fn capped(size: u64, rate: u64) -> (FakeHub, Hive) {
    let hub = hub_with_slow_model(size, rate);
    let hive = Hive::spawn(&hub);
    (hub, hive)
}

/// Runs a download to its end; returns its events and wall time.
#[track_caller]
fn download(hive: &Hive, connections: Option<u32>) -> (Vec<Event>, Duration) {
    let t = Instant::now();
    let id = start(hive, connections);
    let frames = hive.sse(&id).until_terminal(6 * TIMEOUT);
    let took = t.elapsed();
    let events: Vec<Event> = frames.into_iter().map(|f| f.event).collect();
    assert!(matches!(events.last(), Some(Event::Done { .. })), "{events:#?}\nhive log:\n{}", hive.log());
    wait_status(hive, &id, "completed");
    (events, took)
}

fn narration<'a>(events: &'a [Event], needle: &str) -> Option<&'a str> {
    events.iter().find_map(|e| match e {
        Event::Narration { message } if message.contains(needle) => Some(message.as_str()),
        _ => None,
    })
}

/// `bytes=A-B` → (A, B + 1).
#[track_caller]
fn span(c: &Connection) -> (u64, u64) {
    let r = c.range.as_deref().unwrap_or_else(|| panic!("no Range: {c:?}"));
    let (a, b) = r.strip_prefix("bytes=").and_then(|r| r.split_once('-')).unwrap_or_else(|| panic!("{r}"));
    (a.parse().expect("start"), b.parse::<u64>().expect("end") + 1)
}

/// Most connections open at the same time.
fn most_at_once(conns: &[Connection]) -> usize {
    conns
        .iter()
        .map(|c| {
            conns.iter().filter(|o| o.opened_at <= c.opened_at && o.closed_at.is_none_or(|t| t > c.opened_at)).count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_capped_cdn_is_beaten_by_parts_at_least_4x() {
    let size = 16 << 20;
    let (hub, hive) = capped(size, 4 << 20);
    // One connection (the job asks for it): the cap alone sets the pace, ~4 s.
    let (_, one) = download(&hive, Some(1));
    assert!(hub.wait_all_closed(TIMEOUT));
    assert_eq!((hub.connections().len(), hub.connections()[0].range.as_deref()), (1, None), "one plain stream");
    std::fs::remove_dir_all(hive.repo_dir(REPO)).expect("clear the cache");

    let (events, parts) = download(&hive, None);
    assert!(hub.wait_all_closed(TIMEOUT));
    let conns: Vec<Connection> = hub.connections().split_off(1);
    let said = narration(&events, "in parts").unwrap_or_else(|| panic!("no narration of the parts: {events:#?}"));
    assert!(said.contains("one connection first"), "{said}");
    assert!(narration(&events, "widened to").is_some(), "a capped CDN rewards more connections: {events:#?}");
    let at_once = most_at_once(&conns);
    assert!(at_once >= 4, "{at_once} connections at once: {conns:#?}");
    assert!(conns.len() <= 16 && at_once <= 16, "never above --max-parts 16: {conns:#?}");
    // The ranges asked cover the file, and every byte came once.
    let mut spans: Vec<(u64, u64)> = conns.iter().map(span).collect();
    spans.sort_unstable();
    assert_eq!(spans.first().map(|s| s.0), Some(0));
    let sent: u64 = conns.iter().map(|c| c.bytes_sent).sum();
    assert!(sent <= size + (1 << 20) * conns.len() as u64, "sent {sent} for {size}: {conns:#?}");
    assert_published(&hive, &hub, MODEL);
    assert!(narration(&events, "sha256 ok").is_some(), "{events:#?}");
    // Progress is the sum over parts: it ends at the size and never goes back.
    let progress: Vec<u64> =
        events.iter().filter_map(|e| if let Event::Progress { bytes, .. } = e { Some(*bytes) } else { None }).collect();
    assert_eq!(progress.last(), Some(&size), "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    eprintln!("parallel: 16 MiB at 4 MiB/s per connection: one stream {one:?}, parts {parts:?} ({at_once} at once)");
    assert!(parts * 4 <= one, "parts took {parts:?}, one connection {one:?}: not 4x faster");
}

#[test]
fn a_cancel_closes_every_part() {
    let size = 64 << 20;
    let (hub, hive) = capped(size, 1 << 20);
    let id = start(&hive, None);
    assert!(
        hub.wait_until(3 * TIMEOUT, |s| s.open_connections >= 8),
        "never 8 parts at once: {:?}",
        hub.stats().connections
    );
    // Let every open part receive something, so each close is mid-body.
    std::thread::sleep(Duration::from_millis(300));
    let open: Vec<u64> = hub.stats().connections.iter().filter(|c| c.closed_at.is_none()).map(|c| c.id).collect();
    let cancelled = Instant::now();
    let (status, body) = hive.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    assert!(hub.wait_all_closed(TIMEOUT), "a part's connection outlived the cancel");
    let conns = hub.connections();
    let mut lags: Vec<Duration> = Vec::new();
    for c in conns.iter().filter(|c| open.contains(&c.id)) {
        assert!(c.closed_by_client(), "closed by the hive mid-body: {c:?}");
        lags.push(c.closed_at.expect("closed").saturating_duration_since(cancelled));
    }
    lags.sort();
    let worst = *lags.last().expect("open parts");
    eprintln!("parallel: cancel closed {} parts, the last {worst:?} after DELETE was sent", lags.len());
    assert!(worst < Duration::from_secs(2), "a part closed {worst:?} after the cancel");
    assert!(partial_len(&hive, &hub, MODEL) > 0, "the parts are kept for resume");
    assert!(!incomplete(&hive, &hub, MODEL).exists(), "parts never write the `.incomplete` older HF tools resume");
}

/// Starts a download in parts over up to 8 connections and cancels it (or kills the hive) once
/// the CDN sent `after` bytes; returns when every part's connection closed.
fn interrupt_in_parts(hive: &mut Hive, hub: &FakeHub, after: u64, kill: bool) {
    let id = start(hive, Some(8));
    assert!(hub.wait_for_bytes(after, 3 * TIMEOUT), "the first run never got {after} bytes");
    if kill {
        hive.restart();
    } else {
        assert_eq!(hive.delete(&format!("/v1/jobs/{id}")).0, 200);
    }
    assert!(hub.wait_all_closed(TIMEOUT), "parts outlived the {}", if kill { "kill" } else { "cancel" });
}

/// Cancel (or kill) a throttled download in parts once 10 MiB went out, then download again
/// unthrottled. Both halves are checked against the part map the interruption left: it kept what
/// the parts had written ([`kept_what_was_written`]), and the resume asked for exactly the
/// blocks it lacks ([`asked_only_what_is_missing`]).
///
/// Why the resume is judged by the ranges it asked for, not by the hub's byte counter: the hub
/// counts a byte as sent once its socket accepted it. Unthrottled on loopback, a request streams
/// megabytes ahead of a hive starved of CPU (`ss` under 3 CPU hogs: 3-4 MB in the hub's send
/// queue and about 3 MB in the hive's receive queue of one connection), and such a hive may widen
/// (README, "Known limits"). A worker then carves the rest of a running request; the hive reads
/// that request up to the carve and closes it, and whatever the sockets held past the carve was
/// counted as sent though the hive never read it. That made the resume look as if it fetched up
/// to 10 MB more than was missing (9 of 36 stressed runs failed a bound of 1 MiB per part), with
/// no request ever asking for a block the part map held. What a carve costs on a real link (what
/// that one connection had in flight) is the carve's trade-off (README, "Known limits"), not the
/// resume's.
fn interrupted_then_resumed(kill: bool) {
    let size = 32 << 20;
    let (hub, mut hive) = capped(size, 2 << 20);
    interrupt_in_parts(&mut hive, &hub, 10 << 20, kill);
    let first = hub.connections();
    let map = PartMap::read(&hive, &hub, MODEL);
    kept_what_was_written(&hive, &hub, &map, &first, kill);
    hub.set_rate(0);
    let (events, _) = download(&hive, None);
    assert!(narration(&events, "resuming").is_some(), "{events:#?}");
    assert!(hub.wait_all_closed(TIMEOUT));
    let resumed = hub.connections().split_off(first.len());
    let missing = size - map.held();
    asked_only_what_is_missing(&map, &resumed);
    let again: u64 = resumed.iter().map(|c| c.bytes_sent).sum();
    eprintln!(
        "parallel: {} with {} parts open: missing {missing}, asked for it in {} requests; the hub wrote {again} \
         ({} past carves, into socket buffers)",
        if kill { "kill -9" } else { "cancel" },
        first.iter().filter(|c| c.closed_by_client()).count(),
        resumed.len(),
        again.saturating_sub(missing)
    );
    assert_published(&hive, &hub, MODEL);
}

/// Bytes `a` and `b` (ranges, end exclusive) share.
fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    a.1.min(b.1).saturating_sub(a.0.max(b.0))
}

/// What an interruption keeps: every block marked done holds the file's bytes; after a cancel
/// (answered once no write is in flight) every block written whole is marked done; and of what
/// each part's connection delivered, at most 1 MiB is not kept (a write batch, the block it
/// ended in, what sat in its sockets: about 0.2 MB per part measured under load), less than a
/// part had received, so a part whose progress was lost fails here.
#[track_caller]
fn kept_what_was_written(hive: &Hive, hub: &FakeHub, map: &PartMap, first: &[Connection], kill: bool) {
    let want = hub.file_bytes(REPO, MODEL);
    let data = std::fs::read(parts_file(hive, hub, MODEL)).expect("the part file");
    for (i, done) in (0..).zip(&map.done) {
        let (a, b) = map.block_range(i);
        let (a, b) = (usize::try_from(a).expect("offset"), usize::try_from(b).expect("offset"));
        let whole = data.get(a..b) == Some(&want[a..b]);
        assert!(whole || !done, "block {i} is marked done without its bytes");
        // A kill may land between a batch's data and its marks (the next download fetches it again).
        assert!(!whole || *done || kill, "block {i} was written whole but not marked done: it would be fetched again");
    }
    let holes = map.missing();
    for c in first.iter().filter(|c| c.range.is_some()) {
        let start = span(c).0;
        let lost: u64 = holes.iter().map(|h| overlap(*h, (start, start + c.bytes_sent))).sum();
        assert!(lost <= 1 << 20, "{lost} bytes of a part were not kept: {c:?}\nmissing: {holes:?}");
    }
}

/// What a resume asks for: no request covers a block the part map holds, and each missing byte
/// is asked for once. A request another one starts inside was carved (or retried) there: the hive
/// reads it no further, so it counts up to that point. (Not only a later one: a worker may send
/// its request just before another carves it, and the hub accept the carver's first.)
#[track_caller]
fn asked_only_what_is_missing(map: &PartMap, resumed: &[Connection]) {
    let holes = map.missing();
    let spans: Vec<(u64, u64)> = resumed.iter().map(span).collect();
    for (c, (a, b)) in resumed.iter().zip(&spans) {
        assert!(
            holes.iter().any(|(s, e)| s <= a && b <= e),
            "the resume asked for bytes the part map holds: {c:?}\nmissing: {holes:?}"
        );
    }
    // A request that delivered nothing (one a retry replaced at once) fetched nothing.
    let fetched: Vec<(u64, u64)> =
        resumed.iter().zip(&spans).filter(|(c, _)| c.bytes_sent > 0).map(|(_, s)| *s).collect();
    let mut asked: Vec<(u64, u64)> = fetched
        .iter()
        .map(|&(a, b)| (a, fetched.iter().map(|s| s.0).filter(|s| a < *s && *s < b).min().unwrap_or(b)))
        .collect();
    asked.sort_unstable();
    assert!(asked.windows(2).all(|w| w[0].1 <= w[1].0), "the resume asked for bytes twice: {asked:?}");
    let total: u64 = asked.iter().map(|(a, b)| b - a).sum();
    assert_eq!(total, map.size - map.held(), "the resume asked for other than what is missing: {asked:?}");
}

#[test]
fn a_cancelled_download_in_parts_fetches_only_what_is_missing() {
    interrupted_then_resumed(false);
}

#[test]
fn a_killed_download_in_parts_fetches_only_what_is_missing() {
    interrupted_then_resumed(true);
}

/// The space check counts what a download in parts already holds: a resume that needs less than
/// the whole file goes ahead on a disk that could not hold the whole file again.
#[test]
fn a_resumed_download_in_parts_needs_room_only_for_what_is_missing() {
    let size = 32 << 20;
    let (hub, mut hive) = capped(size, 2 << 20);
    interrupt_in_parts(&mut hive, &hub, 12 << 20, false);
    // The blocks the part map marks done (the sparse file's length says only how far parts got).
    let held = PartMap::read(&hive, &hub, MODEL).held();
    hub.set_rate(0);
    // Room for the missing bytes plus 1 MiB, less than the whole file.
    let free = size - held + (1 << 20);
    assert!(free < size, "the cancel kept only {held} bytes");
    let tight = Hive::builder().hub(&hub).share_cache(&hive).arg("--test-free-space").arg(&free.to_string()).spawn();
    let out = crate::harness::Keeper::new().hive(&tight).args(["model", "download", REPO, MODEL]).run();
    out.assert_success().assert_stderr_contains("resuming");
    assert_published(&tight, &hub, MODEL);
    eprintln!("parallel: resumed with {held} bytes of parts held and {free} bytes free for a {size}-byte file");
    // The same disk cannot hold the whole file: a fresh download is refused before any byte.
    let seen = hub.stats().cdn_bytes;
    let full = Hive::builder().hub(&hub).arg("--test-free-space").arg(&free.to_string()).spawn();
    let out = crate::harness::Keeper::new().hive(&full).args(["model", "download", REPO, MODEL]).run();
    out.assert_code(1).assert_stderr_contains("free at ");
    assert_eq!(hub.stats().cdn_bytes, seen, "bytes were fetched for a download that cannot fit");
}

#[test]
fn a_server_ignoring_range_is_fetched_as_one_stream() {
    let size = 16 << 20;
    let hub = hub_with_faulty_model(size, 0, Fault::IgnoreRange, 1000);
    let hive = Hive::spawn(&hub);
    let (events, _) = download(&hive, None);
    assert!(narration(&events, "ignored the Range").is_some(), "{events:#?}");
    assert!(hub.wait_all_closed(TIMEOUT));
    let conns = hub.connections();
    let last = conns.last().expect("connections");
    assert_eq!((last.status, last.range.as_deref(), last.bytes_sent), (Some(200), None, size), "{conns:#?}");
    assert_published(&hive, &hub, MODEL);
}

#[test]
fn a_failing_part_is_retried_alone() {
    let size = 24 << 20;
    let hub = hub_with_faulty_model(size, 8 << 20, Fault::ResetAfter(1 << 20), 1);
    let hive = Hive::builder().hub(&hub).arg("--retry-backoff-ms").arg("50").spawn();
    let (events, _) = download(&hive, Some(4));
    let retry = narration(&events, "retry").unwrap_or_else(|| panic!("no retry narration: {events:#?}"));
    assert!(retry.contains("part"), "{retry}");
    assert!(hub.wait_all_closed(TIMEOUT));
    let conns = hub.connections();
    let reset = conns.iter().find(|c| c.close == Some(CloseReason::Reset)).expect("the reset part");
    let (start, _) = span(reset);
    // The retry asks for the rest of that part only; no other part started over.
    let again = conns.iter().find(|c| c.id > reset.id && span(c).0 > start && span(c).0 <= start + (1 << 20));
    assert!(again.is_some(), "the failed part was not resumed where it stopped: {conns:#?}");
    let sent: u64 = conns.iter().map(|c| c.bytes_sent).sum();
    assert!(sent <= size + (1 << 20), "sent {sent} for {size}: {conns:#?}");
    assert_published(&hive, &hub, MODEL);
}

#[test]
fn a_one_stream_incomplete_is_taken_over_and_hf_scans_cleanly() {
    let size = 24 << 20;
    let (hub, hive) = capped(size, 4 << 20);
    // One stream leaves an `.incomplete` (as huggingface_hub would).
    let id = start(&hive, Some(1));
    let prefix = incomplete(&hive, &hub, MODEL);
    wait_for(&hive, TIMEOUT, "4 MiB in the .incomplete", || file_len(&prefix) >= 4 << 20);
    assert_eq!(hive.delete(&format!("/v1/jobs/{id}")).0, 200);
    let kept = file_len(&prefix);
    assert!(hub.wait_all_closed(TIMEOUT));
    let before = hub.stats().cdn_bytes;
    // In parts: the prefix is taken over; cancel midway, the cache stays clean for HF tools. (Slow
    // enough that 16 connections cannot finish while huggingface_hub scans the cache.)
    hub.set_rate(512 << 10);
    let id = start(&hive, None);
    assert!(hub.wait_for_bytes(before + (4 << 20), TIMEOUT), "no parts flowed");
    assert!(!prefix.exists(), "the .incomplete was not taken over");
    assert!(file_len(&parts_file(&hive, &hub, MODEL)) > 0);
    assert_eq!(hf_scan_warnings(hive.cache_dir()), Vec::<String>::new(), "during a download in parts");
    assert_eq!(hive.delete(&format!("/v1/jobs/{id}")).0, 200);
    assert_eq!(hf_scan_warnings(hive.cache_dir()), Vec::<String>::new(), "after a cancel in parts");
    assert!(hub.wait_all_closed(TIMEOUT));
    hub.set_rate(0);
    download(&hive, None);
    assert!(hub.wait_all_closed(TIMEOUT));
    let ranged: Vec<(u64, u64)> = hub.connections().iter().filter(|c| c.range.is_some()).map(span).collect();
    assert!(
        // Whole blocks of the part map (64 KiB) of the prefix are kept.
        ranged.iter().all(|(a, _)| *a >= kept - (kept % (64 << 10))),
        "the taken-over prefix was fetched again: {ranged:?}"
    );
    assert_published(&hive, &hub, MODEL);
    assert_eq!(hf_scan_warnings(hive.cache_dir()), Vec::<String>::new(), "after the download");
}

#[test]
fn the_keeper_asks_for_fewer_connections() {
    let size = 16 << 20;
    let hub = hub_with_model(size);
    let hive = Hive::spawn(&hub);
    let out =
        crate::harness::Keeper::new().hive(&hive).args(["model", "download", "--connections", "1", REPO, MODEL]).run();
    out.assert_success();
    assert!(hub.wait_all_closed(TIMEOUT));
    let conns = hub.connections();
    assert_eq!((conns.len(), conns[0].range.as_deref()), (1, None), "one plain stream: {conns:#?}");
    assert_published(&hive, &hub, MODEL);
    let out =
        crate::harness::Keeper::new().hive(&hive).args(["model", "download", "--connections", "0", REPO, MODEL]).run();
    out.assert_code(2);
}

/// On a real CDN that keeps connections alive (nginx, capping each connection so that the hive
/// widens), the requests of one part worker reuse its connection: fewer connections than
/// requests, and the file verifies.
#[test]
fn parts_reuse_their_connections_on_a_cdn_that_keeps_them_alive() {
    if crate::harness::nginx::binary().is_none() {
        let _ = rbee_tests::harness::peer::require("nginx-light", &[], "the keep-alive test");
        return;
    }
    let size = 48 << 20;
    let seed = hub_with_model(size);
    seed.set_rate(0);
    let www = tempfile::tempdir().expect("nginx root");
    let sha = seed.sha256(REPO, MODEL);
    let blob = www.path().join("blobs").join(REPO).join(&sha);
    std::fs::create_dir_all(blob.parent().expect("blob dir")).expect("blob dir");
    let body = crate::harness::http::get(&format!("{}/blobs/{REPO}/{sha}", seed.cdn_url())).body;
    assert_eq!(body.len() as u64, size);
    std::fs::write(&blob, body).expect("the blob nginx serves");
    let conf = tempfile::tempdir().expect("nginx dir");
    let nginx = Nginx::start(conf.path(), www.path(), &[Some("8m")]).expect("nginx");
    let hub = FakeHub::start(HubConfig { cdn: Some(nginx.url(0)), ..HubConfig::default() });
    hub.add_repo(RepoSpec::demo(REPO, size));
    let hive = Hive::spawn(&hub);
    let (events, took) = download(&hive, None);
    assert_published(&hive, &hub, MODEL);
    let served = nginx.requests();
    let connections: std::collections::BTreeSet<u64> = served.iter().map(|s| s.connection).collect();
    let most = served.iter().map(|s| s.nth).max().unwrap_or(0);
    eprintln!(
        "parallel: 48 MiB from nginx at 8 MiB/s per connection in {took:?}: {} requests over {} connections \
         (at most {most} on one)",
        served.len(),
        connections.len()
    );
    assert!(narration(&events, "widened to").is_some(), "a capped CDN rewards more connections: {events:#?}");
    assert!(served.iter().all(|s| s.status == 206 && s.range.starts_with("bytes=")), "{served:#?}");
    assert!(most >= 2 && connections.len() < served.len(), "no connection served two requests: {served:#?}");
}
