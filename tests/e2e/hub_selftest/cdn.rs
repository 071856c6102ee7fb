//! The CDN: full bodies, ranges, HEAD, throttling, speed, and what its counters record.

use std::io::Read;
use std::time::{Duration, Instant};

use super::{cdn_location, drop_and_see_client_close, hub, REPO, SIZE};
use crate::harness::http::{self, request};
use crate::harness::{CloseReason, FakeHub, HubConfig, RepoSpec, TIMEOUT};

#[test]
fn serves_ranges_like_a_cdn() {
    let hub = hub();
    let url = cdn_location(&hub, "model.gguf");
    let full = http::get(&url).body;
    let from = request("GET", &url, &[("Range", "bytes=1000-")], None).expect("range");
    assert_eq!(from.status, 206);
    assert_eq!(from.header("content-range"), Some(format!("bytes 1000-{}/{SIZE}", SIZE - 1).as_str()));
    assert_eq!(from.body, full[1000..]);
    let mid = request("GET", &url, &[("Range", "bytes=5-12")], None).expect("range");
    assert_eq!((mid.status, mid.header("content-range")), (206, Some(format!("bytes 5-12/{SIZE}").as_str())));
    assert_eq!(mid.body, full[5..13]);
    let past = request("GET", &url, &[("Range", &format!("bytes={SIZE}-"))], None).expect("range");
    assert_eq!(past.status, 416);
    let head = http::head(&url);
    assert_eq!((head.status, head.header("content-length")), (200, Some(SIZE.to_string().as_str())));
    assert_eq!(head.header("connection"), Some("close"));
    // The client may read the last chunk before the server books it: wait for the closes.
    assert!(hub.wait_all_closed(TIMEOUT));
    let stats = hub.stats();
    assert_eq!(stats.cdn_bytes, SIZE + (SIZE - 1000) + 8);
    let ranges: Vec<_> = stats.connections.iter().map(|c| c.range.clone()).collect();
    assert_eq!(
        ranges,
        [None, Some("bytes=1000-".into()), Some("bytes=5-12".into()), Some(format!("bytes={SIZE}-")), None]
    );
    let c = &stats.connections[0];
    assert_eq!((c.close, c.bytes_sent, c.status), (Some(CloseReason::Finished), SIZE, Some(200)));
    assert!(!c.closed_by_client() && !c.cancelled_mid_body(), "a finished body is not a client close");
    assert!(c.first_byte_at.is_some() && c.closed_at >= c.first_byte_at);
}

#[test]
fn records_authorization_sent_to_the_cdn() {
    let hub = hub();
    let url = cdn_location(&hub, "model.gguf");
    request("HEAD", &url, &[("Authorization", "Bearer leak")], None).expect("head");
    http::head(&url);
    request("HEAD", &format!("{url}?token=q-leak"), &[("X-Other", "h-leak")], None).expect("head");
    let conns = hub.connections();
    assert_eq!(conns[0].authorization.as_deref(), Some("Bearer leak"));
    assert_eq!(conns[1].authorization, None);
    assert_eq!((conns[1].method.as_str(), conns[1].file.as_deref()), ("HEAD", Some("model.gguf")));
    // A secret is found wherever the client put it: a header, the query, the request line.
    assert!(conns[0].mentions("leak") && !conns[1].mentions("leak"));
    assert!(conns[2].mentions("q-leak") && conns[2].mentions("h-leak") && conns[2].mentions("x-other"));
    assert!(
        conns[2].request_line.starts_with("HEAD /blobs/") && conns[2].request_line.ends_with("?token=q-leak HTTP/1.1")
    );
}

#[test]
fn throttles_and_set_rate_applies_to_running_connections() {
    let hub = hub();
    hub.set_rate(1 << 20);
    let mut s = http::open("GET", &cdn_location(&hub, "model.gguf"), &[], None).expect("get");
    let start = Instant::now();
    let mut buf = vec![0; 512 << 10];
    s.body.read_exact(&mut buf).expect("read");
    let slow = start.elapsed();
    assert!(slow >= Duration::from_millis(400), "512 KiB at 1 MiB/s took {slow:?}");
    hub.set_rate(0);
    let mut rest = Vec::new();
    s.body.read_to_end(&mut rest).expect("rest");
    assert_eq!(rest.len() as u64, SIZE - (512 << 10));
    assert!(start.elapsed() < slow + Duration::from_secs(2), "unthrottled rest took {:?}", start.elapsed() - slow);
}

#[test]
fn unthrottled_streams_fast() {
    // Debug builds generate (and hash) bytes ~10x slower (~250 MB/s; release ~2 GB/s). The floors
    // leave room for a loaded 2-CPU machine running other tests: they catch pathologies
    // (per-byte work, tiny writes), the benchmark measures the real number.
    let (size, floor) = if cfg!(debug_assertions) { (64 << 20, 20e6) } else { (512 << 20, 400e6) };
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(RepoSpec::demo(REPO, size));
    let mut s = http::open("GET", &cdn_location(&hub, "model.gguf"), &[], None).expect("get");
    let start = Instant::now();
    let n = std::io::copy(&mut s.body, &mut std::io::sink()).expect("copy");
    let rate = n as f64 / start.elapsed().as_secs_f64();
    assert_eq!(n, size);
    assert!(rate > floor, "{:.0} MB/s", rate / 1e6);
    eprintln!("fake CDN unthrottled: {:.0} MB/s", rate / 1e6);
}

#[test]
fn a_client_dropping_a_throttled_connection_is_seen_at_once() {
    let hub = hub();
    hub.set_rate(64 << 10);
    let mut s = http::open("GET", &cdn_location(&hub, "model.gguf"), &[], None).expect("get");
    s.body.read_exact(&mut [0; 1000]).expect("first bytes");
    let conn = hub.wait_for_connection(0, TIMEOUT).expect("connection");
    assert!(conn.closed_at.is_none());
    assert_eq!(hub.stats().open_connections, 1);
    // At 64 KiB/s the 4 MiB body would take a minute: a close seen within seconds, as
    // `ClientClosed` and short of the body, was seen on the socket, not at the end of the body.
    let c = drop_and_see_client_close(&hub, s);
    assert!(c.bytes_sent < SIZE, "{c:?}");
    assert_eq!(hub.stats().open_connections, 0);
}

#[test]
fn dropping_the_hub_closes_everything() {
    let hub = hub();
    hub.set_rate(1024);
    let (endpoint, cdn) = (hub.endpoint().to_owned(), cdn_location(&hub, "model.gguf"));
    let want = hub.file_bytes(REPO, "model.gguf");
    let mut s = http::open("GET", &cdn, &[], None).expect("get");
    drop(hub);
    let mut rest = Vec::new();
    assert!(s.body.read_to_end(&mut rest).is_err(), "body cut short when the hub stops");
    assert!(request("HEAD", &cdn, &[], None).is_err(), "CDN still listening");
    assert!(
        request("HEAD", &format!("{endpoint}/{REPO}/resolve/main/model.gguf"), &[], None).is_err(),
        "hub still listening"
    );
    // What did arrive (at 1 KiB/s) is a true prefix of the file, far short of all of it.
    assert!((rest.len() as u64) < SIZE && want.starts_with(&rest), "{} bytes, not a short prefix", rest.len());
}
