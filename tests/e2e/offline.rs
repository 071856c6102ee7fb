//! The cache without a network, as huggingface_hub answers it: a cached full commit is never
//! asked about, an unreachable hub falls back to `refs/<revision>` (saying so in one line), and
//! the keeper's `HF_HUB_OFFLINE=1` makes its job answer from the cache alone.

use std::time::{Duration, Instant};

use crate::harness::fixtures::{hub_with_model, snapshot, MODEL, REPO};
use crate::harness::{Hive, Keeper};

/// An endpoint whose host name cannot resolve, without asking any DNS server: a 64-character
/// label is refused by the resolver before a query is built.
fn unresolvable() -> String {
    format!("http://{}.invalid", "a".repeat(64))
}

#[test]
fn a_cached_file_is_answered_when_the_hub_does_not_resolve() {
    let hub = hub_with_model(64 << 10);
    let online = Hive::spawn(&hub);
    Keeper::new().hive(&online).args(["model", "download", REPO, MODEL]).run().assert_success();
    let commit = hub.commit(REPO);
    let cut_off = Hive::builder().endpoint(&unresolvable()).share_cache(&online).spawn();

    let started = Instant::now();
    let out = Keeper::new().hive(&cut_off).args(["model", "download", REPO, MODEL]).run();
    let took = started.elapsed();
    out.assert_success().assert_stdout_contains(&snapshot(&online, &hub, MODEL).display().to_string());
    let line =
        format!("hub unreachable: using the cached main ({}) — set HF_HUB_OFFLINE=1 to skip the check", &commit[..7]);
    out.assert_stderr_contains(&line);
    assert!(took < Duration::from_secs(3), "took {took:?}\n{}", out.dump());
    assert!(!out.stderr.contains("Still downloading"), "a heartbeat claimed a download\n{}", out.dump());

    // What the cache lacks fails, and says how to skip the hub.
    let started = Instant::now();
    let out = Keeper::new().hive(&cut_off).args(["model", "download", REPO, "config.json"]).run();
    out.assert_code(1).assert_stderr_contains("HF_HUB_OFFLINE").assert_stderr_contains("resolve host");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}\n{}", started.elapsed(), out.dump());
}

#[test]
fn a_cached_full_commit_is_answered_without_asking_the_hub() {
    let hub = hub_with_model(64 << 10);
    let hive = Hive::spawn(&hub);
    let commit = hub.commit(REPO);
    Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL, "--revision", &commit]).run().assert_success();
    let asked = hub.stats().requests.len();
    assert!(asked > 0, "the first download never asked the hub");

    let out = Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL, "--revision", &commit]).run();
    out.assert_success().assert_stdout_contains(&snapshot(&hive, &hub, MODEL).display().to_string());
    let stats = hub.stats();
    assert_eq!(stats.requests.len(), asked, "the hub was asked again: {:#?}", &stats.requests[asked..]);
    assert_eq!(stats.connections.len(), 1, "the CDN was asked again");
}

#[test]
fn the_keepers_hf_hub_offline_reaches_the_hive() {
    let hub = hub_with_model(64 << 10);
    let hive = Hive::spawn(&hub);
    Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run().assert_success();
    let asked = hub.stats().requests.len();

    let offline = || Keeper::new().hive(&hive).env("HF_HUB_OFFLINE", "1");
    let out = offline().args(["model", "download", REPO, MODEL]).run();
    out.assert_success().assert_stdout_contains(&snapshot(&hive, &hub, MODEL).display().to_string());
    let out = offline().args(["model", "download", REPO, "config.json"]).run();
    out.assert_code(1).assert_stderr_contains("HF_HUB_OFFLINE was asked for by this job");
    let stats = hub.stats();
    assert_eq!(stats.requests.len(), asked, "the hub saw a request: {:#?}", &stats.requests[asked..]);

    // Without the wish the same hive asks the hub as before.
    Keeper::new().hive(&hive).args(["model", "download", REPO, "config.json"]).run().assert_success();
    assert!(hub.stats().requests.len() > asked, "the online download never asked the hub");
}

#[test]
fn a_hub_that_refuses_connections_falls_back_too() {
    let hub = hub_with_model(64 << 10);
    let online = Hive::spawn(&hub);
    Keeper::new().hive(&online).args(["model", "download", REPO, MODEL]).run().assert_success();
    // The harness's default endpoint is a closed loopback port.
    let refused = Hive::builder().retries(1).share_cache(&online).spawn();
    let out = Keeper::new().hive(&refused).args(["model", "download", REPO, MODEL]).run();
    out.assert_success().assert_stderr_contains("hub unreachable: using the cached main");
    out.assert_stdout_contains(&snapshot(&online, &hub, MODEL).display().to_string());
}
