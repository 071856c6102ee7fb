//! Issue 13, the network side: 429 waits, stalls and trickles, bandwidth caps, Xet redirect
//! chains, and proxies (a real `tinyproxy`).

use std::time::{Duration, Instant};

use rbee_tests::harness::fixtures::{assert_published, hub_with_model, range_start, MODEL, REPO};
use rbee_tests::harness::{Fault, Hive, Keeper};

const KIB: u64 = 1024;

#[test]
fn rate_limits_wait_as_the_hub_says_and_resume() {
    let hub = hub_with_model(64 * KIB);
    let hive = Hive::spawn(&hub);
    hub.set_rate_limit(1, &[("Retry-After", "1")]);
    let started = Instant::now();
    let out = Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run();
    out.assert_success().assert_stderr_contains("rate limited by the hub, retrying in 1 s");
    assert!(started.elapsed() >= Duration::from_secs(1), "did not wait");
    hub.set_rate_limit(1, &[("RateLimit", r#""resolvers";r=0;t=2"#)]);
    let started = Instant::now();
    let out = Keeper::new().hive(&hive).args(["model", "download", REPO, "config.json"]).run();
    out.assert_success().assert_stderr_contains("rate limited by the hub, retrying in 2 s");
    assert!(started.elapsed() >= Duration::from_secs(2), "did not wait");
}

#[test]
fn a_stalled_and_a_trickling_connection_are_dropped_and_resumed() {
    let hub = hub_with_model(256 * KIB);
    let hive = Hive::builder().hub(&hub).stall_secs(2).spawn();
    hub.set_fault(MODEL, Fault::StallAfter(64 * KIB), 1);
    hub.set_fault(MODEL, Fault::TrickleAfter(128 * KIB), 1);
    let started = Instant::now();
    let out = Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run();
    out.assert_success().assert_stderr_contains("no data for 2s (stalled)").assert_stderr_contains("stalled: only");
    assert_published(&hive, &hub, MODEL);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    let conns = hub.connections();
    assert_eq!(conns.len(), 3, "{conns:?}");
    assert_eq!(range_start(conns[1].range.as_deref()), 64 * KIB, "resumed after the stall");
    assert!(range_start(conns[2].range.as_deref()) > 192 * KIB, "resumed after the trickle: {conns:?}");
}

#[test]
fn a_job_bandwidth_cap_holds() {
    let hub = hub_with_model(384 * KIB);
    let hive = Hive::spawn(&hub);
    let started = Instant::now();
    Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL, "--max-rate", "128K"]).run().assert_success();
    let took = started.elapsed().as_secs_f64();
    // 384 KiB at 128 KiB/s: 3 s (the bucket starts empty); generous on a shared CI machine.
    assert!((2.7..6.0).contains(&took), "took {took:.2} s");
}

#[test]
fn the_hive_bandwidth_cap_holds() {
    let hub = hub_with_model(384 * KIB);
    let hive = Hive::builder().hub(&hub).arg("--max-rate").arg("128K").spawn();
    let started = Instant::now();
    Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run().assert_success();
    let took = started.elapsed().as_secs_f64();
    assert!((2.7..6.0).contains(&took), "took {took:.2} s");
}

#[test]
fn xet_files_follow_the_bridge_verify_the_linked_etag_and_keep_the_token_home() {
    let hub = hub_with_model(128 * KIB);
    let hive = Hive::builder().hub(&hub).hf_token("hf_secret_xet").spawn();
    hub.set_xet(MODEL, false);
    Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run().assert_success();
    assert_published(&hive, &hub, MODEL);
    let conns = hub.connections();
    assert!(conns.iter().any(|c| c.path.starts_with("/bridge/")), "no bridge hop: {conns:?}");
    assert!(conns.iter().all(|c| c.authorization.is_none()), "token sent off the endpoint: {conns:?}");
    let hub2 = hub_with_model(64 * KIB);
    let hive2 = Hive::spawn(&hub2);
    hub2.set_xet(MODEL, true);
    let out = Keeper::new().hive(&hive2).args(["model", "download", REPO, MODEL]).run();
    out.assert_code(1).assert_stderr_contains("is stored in Xet and the hub refused to serve it over plain HTTP");
}

#[test]
fn proxies_carry_hub_and_cdn_traffic_and_the_token_stays_home() {
    let Some(tinyproxy) = rbee_tests::harness::peer::require(
        "tinyproxy",
        &["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"],
        "the proxy test",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = rbee_tests::harness::free_port();
    let log = dir.path().join("tinyproxy.log");
    let conf = dir.path().join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 20\nAllow 127.0.0.1\nDisableViaHeader Yes\n",
            log.display()
        ),
    )
    .unwrap();
    let mut proxy =
        std::process::Command::new(tinyproxy).args(["-d", "-c"]).arg(&conf).spawn().expect("start tinyproxy");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tinyproxy did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let hub = hub_with_model(64 * KIB);
    let hive = Hive::builder()
        .hub(&hub)
        .hf_token("hf_secret_proxy")
        .env("HTTP_PROXY", &format!("http://127.0.0.1:{port}"))
        .env("NO_PROXY", "")
        .spawn();
    Keeper::new().hive(&hive).args(["model", "download", REPO, MODEL]).run().assert_success();
    assert_published(&hive, &hub, MODEL);
    let _ = proxy.kill();
    let _ = proxy.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("/resolve/"), "hub traffic did not go through the proxy:\n{text}");
    assert!(text.contains("/blobs/"), "CDN traffic did not go through the proxy:\n{text}");
    let conns = hub.connections();
    assert!(conns.iter().all(|c| c.authorization.is_none()), "token reached the CDN: {conns:?}");
    let hub_auth = hub.stats().requests.iter().filter(|r| r.header("authorization").is_some()).count();
    assert!(hub_auth > 0, "the token did not reach the endpoint through the proxy");
}
