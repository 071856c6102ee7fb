//! `DELETE /v1/jobs/{id}`: 404 for an unknown job, 409 for an ended one, and for a running one
//! 200 once its task is gone — the job is cancelled, its connection closed, no task left.

use rbee_protocol::Event;

use std::time::Duration;

use crate::harness::fixtures::{
    cache_state, hub_with_model, hub_with_slow_model, job, live_tasks, parts_file, wait_status, MODEL, REPO,
};
use crate::harness::{CloseReason, Hive, TIMEOUT};

#[test]
fn delete_of_an_unknown_job_is_404_with_a_json_error() {
    let hub = hub_with_model(1 << 20);
    let hive = Hive::spawn(&hub);
    let (status, body) = hive.delete("/v1/jobs/job-0000000000000000");
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "JSON error code: {body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("job-0000000000000000")), "{body}");
    let (status, body) = hive.get("/v1/jobs/job-0000000000000000");
    assert_eq!(status, 404, "{body}");
}

#[test]
fn delete_of_a_completed_job_is_409() {
    let hub = hub_with_model(1 << 20);
    let hive = Hive::spawn(&hub);
    let id = hive.start_download(REPO, MODEL);
    wait_status(&hive, &id, "completed");
    let (status, body) = hive.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
    assert_eq!(job(&hive, &id)["status"], "completed", "a refused cancel changed the job");
}

#[test]
fn delete_of_a_running_job_cancels_it_and_frees_its_tasks() {
    let hub = hub_with_slow_model(32 << 20, 2 << 20);
    let hive = Hive::builder().hub(&hub).heartbeat_secs(1).spawn();
    let id = hive.start_download(REPO, MODEL);
    assert!(hub.wait_for_bytes(256 << 10, TIMEOUT), "no bytes flowed");
    assert_eq!(job(&hive, &id)["status"], "running");
    assert!(live_tasks(&hive) >= 1, "a running job has a live task");

    // At the instant DELETE answers: no task left, and nothing in the cache changes any more.
    let (status, body) = hive.delete(&format!("/v1/jobs/{id}"));
    let at_delete = cache_state(&hive);
    assert_eq!(live_tasks(&hive), 0, "tasks alive when DELETE answered\nhive log:\n{}", hive.log());
    assert_eq!(status, 200, "{body}\nhive log:\n{}", hive.log());
    assert_eq!(body["status"], "cancelled", "{body}");
    assert_eq!(job(&hive, &id)["status"], "cancelled");
    let part = parts_file(&hive, &hub, MODEL);
    assert!(at_delete.get(&part).is_some_and(|(len, _)| *len > 0), "partial kept: {at_delete:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cache_state(&hive), at_delete, "the cache changed after DELETE answered");
    assert!(hub.wait_all_closed(TIMEOUT), "a CDN connection stayed open");
    let conns = hub.connections();
    for conn in conns.iter().filter(|c| c.close != Some(CloseReason::Finished)) {
        assert!(conn.closed_by_client(), "closed by the hive while open: {conn:?}");
    }
    assert!(conns.iter().any(|c| c.cancelled_mid_body()), "no part was cut mid-body: {conns:#?}");

    let (status, body) = hive.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 409, "a second DELETE: {body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    let (_, health) = hive.get("/health");
    assert_eq!(health["running_jobs"], 0, "{health}");
    let mut replay = hive.sse(&id);
    let frames = replay.until_terminal(TIMEOUT);
    assert!(matches!(frames.last().map(|f| &f.event), Some(Event::Cancelled { .. })), "{frames:#?}");
}
