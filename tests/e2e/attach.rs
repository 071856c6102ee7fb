//! `rbee job attach` watches a job it does not own: Ctrl+C stops watching and leaves the job
//! running (exit 130, with the command that would cancel it). (`--cancel`, which makes Ctrl+C
//! cancel it, is tested on a terminal in `tty.rs`.)

use crate::harness::fixtures::{hub_with_slow_model, job, MODEL, REPO};
use crate::harness::{Hive, Keeper, TIMEOUT};

#[test]
fn ctrl_c_on_attach_detaches_and_leaves_the_job_running() {
    let hub = hub_with_slow_model(8 << 20, 256 << 10);
    let hive = Hive::spawn(&hub);
    let id = hive.start_download(REPO, MODEL);

    let keeper = Keeper::new().hive(&hive).args(["job", "attach", &id]).spawn();
    keeper.wait_for_stderr(TIMEOUT, |l| l.contains(&format!("📋 job {id}")));
    keeper.send_sigint();
    let out = keeper.wait_timeout(TIMEOUT);
    out.assert_code(130).assert_stderr_contains(&format!("still running: rbee job cancel {id}"));
    assert_eq!(job(&hive, &id)["status"], "running", "detaching cancelled the job\n{}", out.dump());
    let before = hub.stats().total_bytes();
    assert!(hub.wait_for_bytes(before + (64 << 10), TIMEOUT), "the job stopped downloading after the detach");
}
