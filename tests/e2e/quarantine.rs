//! `rbee model verify` never overwrites what it quarantined (issue 25, point 9): the same blob
//! quarantined twice keeps both copies, each with its own restore record.

use crate::harness::fixtures::{blob, etag, hub_with_model, MODEL, REPO};
use crate::harness::{download_ok, FakeHub, Hive, Keeper};

/// Flips one byte of the published blob of [`MODEL`]; returns the corrupt bytes.
fn corrupt(hive: &Hive, hub: &FakeHub, at: usize) -> Vec<u8> {
    let path = blob(hive, hub, MODEL);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    bytes
}

#[test]
fn two_quarantines_of_the_same_blob_keep_both_copies() {
    let hub = hub_with_model(64 << 10);
    let hive = Hive::spawn(&hub);
    let etag = etag(&hub, MODEL);
    let q = hive.cache_dir().join(".rbee-quarantine").join(format!("models--{}", REPO.replace('/', "--")));
    let mut copies = Vec::new();
    for (round, at) in [10, 20].into_iter().enumerate() {
        download_ok(&hive, REPO, Some(MODEL), None);
        copies.push(corrupt(&hive, &hub, at));
        let out = Keeper::new().hive(&hive).args(["model", "verify", REPO]).run();
        out.assert_code(1).assert_stderr_contains("quarantined");
        let name = if round == 0 { etag.clone() } else { format!("{etag}.{}", round + 1) };
        out.assert_stderr_contains(&q.join(&name).display().to_string());
    }
    for (name, bytes) in [(etag.clone(), &copies[0]), (format!("{etag}.2"), &copies[1])] {
        assert_eq!(&std::fs::read(q.join(&name)).unwrap(), bytes, "quarantined copy `{name}` kept as it was");
        let record = std::fs::read_to_string(q.join(format!("{name}.json"))).expect("its own record");
        assert!(record.contains(&q.join(&name).display().to_string()), "{record}");
        assert!(record.contains(MODEL), "{record}");
    }
    download_ok(&hive, REPO, Some(MODEL), None);
    Keeper::new().hive(&hive).args(["model", "verify", REPO]).run().assert_success();
}
