//! Finished jobs (and their event logs) are kept for a bounded count (`--max-finished-jobs`) and
//! time (`--finished-ttl-secs`): older ones answer 404 everywhere, `GET /v1/jobs` stays bounded,
//! running jobs are never dropped, and memory stays flat over thousands of short jobs.
//!
//! `RBEE_SOAK=1` runs 10 000 jobs instead of 2 000 (`just soak`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::fixtures::{soak, wait_idle};
use crate::harness::process::rss_kib;
use crate::harness::{FakeHub, Hive, RepoSpec, TIMEOUT};

fn model_list() -> Value {
    json!({ "operation": "model_list", "hive_id": "localhost" })
}

#[track_caller]
fn submit(hive: &Hive, op: &Value) -> String {
    let (status, body) = hive.post_job(op);
    assert_eq!(status, 200, "POST /v1/jobs {op}: {body}\nhive log:\n{}", hive.log());
    body["job_id"].as_str().expect("job_id").to_owned()
}

/// Runs a `ModelList` job to its end; returns its id.
#[track_caller]
fn finished_job(hive: &Hive) -> String {
    let id = submit(hive, &model_list());
    let frames = hive.sse(&id).until_terminal(TIMEOUT);
    assert_eq!(frames.last().map(|f| f.event.name()), Some("done"), "{frames:?}");
    id
}

#[track_caller]
fn assert_gone(hive: &Hive, id: &str) {
    for (method, path) in [("GET", format!("/v1/jobs/{id}")), ("GET", format!("/v1/jobs/{id}/stream"))] {
        let (status, body) = hive.get(&path);
        assert_eq!((status, body["error"].as_str()), (404, Some("job_not_found")), "{method} {path}: {body}");
    }
    let (status, body) = hive.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 404, "DELETE of an expired job: {body}");
}

fn listed_ids(hive: &Hive) -> Vec<String> {
    let (status, list) = hive.get("/v1/jobs");
    assert_eq!(status, 200);
    list.as_array().expect("array").iter().map(|j| j["job_id"].as_str().expect("id").to_owned()).collect()
}

#[test]
fn oldest_finished_jobs_go_past_the_count() {
    let hive = Hive::builder().arg("--max-finished-jobs").arg("5").spawn();
    let ids: Vec<String> = (0..12).map(|_| finished_job(&hive)).collect();
    wait_idle(&hive, TIMEOUT);
    let listed = listed_ids(&hive);
    assert_eq!(listed, ids[7..], "GET /v1/jobs keeps exactly the 5 newest finished jobs, oldest first");
    assert_eq!(hive.get("/health").1["jobs"], 5);
    for id in &ids[..7] {
        assert_gone(&hive, id);
    }
    // A kept job still replays its whole log, ending with exactly one terminal event.
    let frames = hive.sse(&ids[11]).until_terminal(TIMEOUT);
    assert_eq!(frames.iter().filter(|f| f.event.is_terminal()).count(), 1);
    let (status, info) = hive.get(&format!("/v1/jobs/{}", ids[7]));
    assert_eq!((status, info["status"].as_str()), (200, Some("completed")), "{info}");
}

#[test]
fn finished_jobs_expire_after_the_ttl_but_running_ones_stay() {
    let hub = FakeHub::start(rbee_tests::hub::HubConfig { rate: 64 << 10, ..Default::default() });
    hub.add_repo(RepoSpec::new("rbee-test/slow").lfs("big.bin", 64 << 20));
    let hive = Hive::builder().hub(&hub).arg("--finished-ttl-secs").arg("1").heartbeat_secs(1).spawn();
    let running = hive.start_download("rbee-test/slow", "big.bin");
    // Each job ends after it was posted, so it may not be gone sooner than a TTL after its POST.
    let done: Vec<(Instant, String)> = (0..3).map(|_| (Instant::now(), finished_job(&hive))).collect();
    for (posted, id) in &done {
        let status = hive.get(&format!("/v1/jobs/{id}")).0;
        if posted.elapsed() < Duration::from_secs(1) {
            assert_eq!(status, 200, "{id} expired before its TTL");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut gone_at: Vec<Option<Instant>> = vec![None; done.len()];
    while gone_at.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "finished jobs outlived their 1 s TTL: {:?}", listed_ids(&hive));
        let listed = listed_ids(&hive);
        for ((_, id), gone) in done.iter().zip(&mut gone_at) {
            if gone.is_none() && !listed.contains(id) {
                *gone = Some(Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for ((posted, id), gone) in done.iter().zip(&gone_at) {
        let lived = gone.expect("gone").duration_since(*posted);
        assert!(lived >= Duration::from_secs(1), "{id} expired {lived:?} after its POST, before its 1 s TTL");
    }
    assert_eq!(listed_ids(&hive), std::slice::from_ref(&running), "the running job is kept");
    let done: Vec<String> = done.into_iter().map(|(_, id)| id).collect();
    for id in &done {
        assert_gone(&hive, id);
    }
    // The long download runs for longer than the TTL and is still there, still running.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(listed_ids(&hive), std::slice::from_ref(&running));
    let (_, info) = hive.get(&format!("/v1/jobs/{running}"));
    assert_eq!(info["status"], "running", "{info}");
    assert_eq!(hive.delete(&format!("/v1/jobs/{running}")).0, 200);
}

#[test]
fn memory_stays_flat_over_many_short_jobs() {
    let total: usize = if soak() { 10_000 } else { 2_000 };
    let max_finished = 100;
    let hive = Hive::builder().arg("--max-finished-jobs").arg(&max_finished.to_string()).spawn();
    let run = |n: usize| {
        let threads = 4;
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..n / threads {
                        submit(&hive, &model_list());
                    }
                });
            }
        });
    };
    // Warm up: fill the retained set and the allocator's pools first.
    let warm = total / 10;
    run(warm);
    wait_idle(&hive, TIMEOUT);
    let baseline = rss_kib(hive.pid());
    let started = Instant::now();
    let mut peak = baseline;
    for _ in 0..4 {
        run((total - warm) / 4);
        peak = peak.max(rss_kib(hive.pid()));
    }
    let elapsed = started.elapsed();
    let health = wait_idle(&hive, Duration::from_secs(30));
    let after = rss_kib(hive.pid());
    let listed = listed_ids(&hive).len();
    eprintln!(
        "retention: {total} ModelList jobs ({} timed) in {:.2} s ({:.0} jobs/s); hive RSS baseline {} KiB, \
         peak {} KiB, after {} KiB (+{} KiB); jobs kept {listed}",
        total - warm,
        elapsed.as_secs_f64(),
        (total - warm) as f64 / elapsed.as_secs_f64(),
        baseline,
        peak,
        after,
        after.saturating_sub(baseline),
    );
    assert!(listed <= max_finished, "GET /v1/jobs lists {listed} > {max_finished}");
    assert!(health["jobs"].as_u64().is_some_and(|n| n <= max_finished as u64), "{health}");
    // Kept jobs are bounded, so memory is too: allow allocator slack, not per-job growth.
    let growth = after.saturating_sub(baseline);
    assert!(growth < 8 << 10, "hive RSS grew {growth} KiB over {total} jobs ({baseline} → {after} KiB)");
}
