//! What the keeper reports about sizes and counts: `📦 1 model` in the singular, a repo emptied by
//! removals is no longer listed, the `∑ total` line of a selection carries a rate, and a hive
//! downloading from another hive's `/hf` mirror knows the sizes it is about to fetch.

use crate::harness::fixtures::{hub_with_model, MODEL, REPO};
use crate::harness::{Hive, Keeper};

#[test]
fn one_model_is_singular_and_an_emptied_repo_is_not_listed() {
    let hub = hub_with_model(64 << 10);
    let hive = Hive::spawn(&hub);
    Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run().assert_success();
    let out = Keeper::new().hive(&hive).args(["model", "list"]).run();
    out.assert_success().assert_stdout_contains("📦 1 model in the cache");

    Keeper::new().hive(&hive).args(["model", "delete", REPO, MODEL]).run().assert_success();
    let out = Keeper::new().hive(&hive).args(["model", "list"]).run();
    out.assert_success().assert_stdout_contains("📦 0 models in the cache");
    assert!(!out.stdout.contains(REPO), "the emptied repo is still listed\n{}", out.dump());
}

#[test]
fn the_total_of_a_selection_has_a_rate_and_a_mirror_gives_the_sizes() {
    let hub = hub_with_model(256 << 10);
    let mirror = Hive::spawn(&hub);
    let out = Keeper::new().hive(&mirror).args(["model", "download", REPO, "--all"]).run();
    out.assert_success();
    let total = out.stderr.lines().rfind(|l| l.contains("∑ total")).unwrap_or_default().to_owned();
    assert!(total.contains(" · ") && !total.ends_with("· 0 B/s"), "the total's rate: {total:?}\n{}", out.dump());

    // A hive whose hub is the mirror: its plan knows what `--all` weighs.
    let behind = Hive::builder().endpoint(&format!("{}/hf", mirror.url())).spawn();
    let out = Keeper::new().hive(&behind).args(["model", "download", REPO, "--all", "--dry-run"]).run();
    out.assert_success().assert_stdout_contains("256.1 KiB of 256.1 KiB");
}
