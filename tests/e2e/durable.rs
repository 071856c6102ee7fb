//! A published blob survives a power cut (issue 24, "Nothing is durable"): its data is
//! `fdatasync`ed before the rename into `blobs/` and `blobs/` is `fsync`ed after (pinned by the
//! order of the hive's syscalls under Debian's `strace -f -y`), the ref and the snapshot link are
//! renamed into place with their directories `fsync`ed; and a blob found short is not "already in
//! the cache": it is fetched again from where it stops and verified.

use crate::harness::fixtures::{blob, cached_model, hub_with_model, snapshot, MODEL, REPO};
use crate::harness::strace::Strace;
use crate::harness::{download_ok, Hive, Keeper};

#[test]
fn a_truncated_blob_is_fetched_again_from_where_it_stops_and_verified() {
    let size: u64 = 2 << 20;
    let (hub, hive) = cached_model(size);
    let blob = blob(&hive, &hub, MODEL);
    let cut = 1 << 20;
    std::fs::File::options().write(true).open(&blob).unwrap().set_len(cut).unwrap();
    let before = hub.stats().cdn_bytes;
    let run = Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run();
    run.assert_success().assert_nowhere("already in the cache").assert_stderr_contains("fetching it again");
    assert_eq!(std::fs::read(snapshot(&hive, &hub, MODEL)).unwrap(), hub.file_bytes(REPO, MODEL), "healed");
    let fetched = hub.stats().cdn_bytes - before;
    assert!(fetched <= size - cut, "fetched {fetched} bytes again: the kept {cut} were not resumed from");
    let again = Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run();
    again.assert_success().assert_stderr_contains("already in the cache");
}

/// The index of the first line after `from` containing every one of `needles`.
#[track_caller]
fn find(lines: &[&str], from: usize, needles: &[&str], trace: &str) -> usize {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| needles.iter().all(|n| l.contains(n)))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no syscall with {needles:?} after line {from} in the trace:\n{trace}"))
}

#[test]
fn publish_syncs_the_data_before_the_rename_and_the_directory_after() {
    let hub = hub_with_model(256 << 10);
    let hive = Hive::spawn(&hub);
    let syscalls = ["fsync", "fdatasync", "rename", "renameat", "renameat2", "symlinkat"];
    let Some(tracer) = Strace::attach(hive.pid(), &syscalls, "the fsync order test") else { return };
    download_ok(&hive, REPO, Some(MODEL), None);
    let trace = tracer.finish();
    let lines: Vec<&str> = trace.lines().collect();
    let etag = blob(&hive, &hub, MODEL).file_name().unwrap().to_string_lossy().into_owned();
    let incomplete = format!("/blobs/{etag}.incomplete>");
    // The data, then the name, then the directory holding the name.
    let data = find(&lines, 0, &["fdatasync(", &incomplete, "= 0"], &trace);
    let rename =
        find(&lines, data, &["renameat", &format!("\"{etag}.incomplete\""), &format!("\"{etag}\""), "= 0"], &trace);
    find(&lines, rename, &["fsync(", "/blobs>", "= 0"], &trace);
    // The snapshot link: made beside its name, renamed over it, its directory synced.
    let commit = hub.commit(REPO);
    let link = find(&lines, 0, &["renameat", &format!("/snapshots/{commit}>"), &format!("\"{MODEL}\""), "= 0"], &trace);
    find(&lines, link, &["fsync(", &format!("/snapshots/{commit}>"), "= 0"], &trace);
    // The ref: written, synced, renamed, its directory synced.
    let ref_data = find(&lines, 0, &["fdatasync(", "/refs/.main.tmp"], &trace);
    let ref_rename = find(&lines, ref_data, &["renameat", "/refs>", "\"main\"", "= 0"], &trace);
    find(&lines, ref_rename, &["fsync(", "/refs>", "= 0"], &trace);
    assert_eq!(std::fs::read(snapshot(&hive, &hub, MODEL)).unwrap(), hub.file_bytes(REPO, MODEL));
}
