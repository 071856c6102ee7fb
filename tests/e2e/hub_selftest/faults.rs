//! Faults: each applies to exactly the next N requests of a file and behaves as named.

use std::io::{ErrorKind, Read};
use std::time::Duration;

use super::{cdn_location, drop_and_see_client_close, hub, sha256, REPO, SIZE};
use crate::harness::http::{self, request};
use crate::harness::{CloseReason, Fault, TIMEOUT};

/// Read a body until it ends or fails: (bytes read, error kind if any).
fn drain(url: &str) -> (Vec<u8>, Option<ErrorKind>) {
    let mut s = http::open("GET", url, &[], None).expect("get");
    let mut got = Vec::new();
    let err = s.body.read_to_end(&mut got).err().map(|e| e.kind());
    (got, err)
}

#[test]
fn reset_after_sends_n_bytes_then_resets() {
    let hub = hub();
    hub.set_fault("model.gguf", Fault::ResetAfter(100_000), 1);
    let url = cdn_location(&hub, "model.gguf");
    let (got, err) = drain(&url);
    assert!(got.len() <= 100_000, "{}", got.len());
    assert!(matches!(err, Some(ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof)), "{err:?}");
    assert!(hub.wait_closed(0, TIMEOUT).is_some());
    let c = &hub.connections()[0];
    assert_eq!((c.close, c.bytes_sent, c.fault), (Some(CloseReason::Reset), 100_000, Some(Fault::ResetAfter(100_000))));
    assert!(!c.closed_by_client(), "a fault's reset is the server's doing");
    let (again, err) = drain(&url);
    assert_eq!((again.len() as u64, err), (SIZE, None), "the fault applies once");
}

#[test]
fn truncate_after_closes_cleanly_short_of_the_length() {
    let hub = hub();
    hub.set_fault("model.gguf", Fault::TruncateAfter(12_345), 1);
    let (got, err) = drain(&cdn_location(&hub, "model.gguf"));
    assert_eq!((got.len(), err), (12_345, Some(ErrorKind::UnexpectedEof)));
    assert!(hub.wait_closed(0, TIMEOUT).is_some());
    assert_eq!(hub.connections()[0].close, Some(CloseReason::Truncated));
}

#[test]
fn stall_holds_the_connection_until_the_client_drops_it() {
    let hub = hub();
    hub.set_fault("model.gguf", Fault::StallAfter(64 << 10), 1);
    let mut s = http::open("GET", &cdn_location(&hub, "model.gguf"), &[], None).expect("get");
    s.body.read_exact(&mut vec![0; 64 << 10]).expect("bytes before the stall");
    s.conn.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let err = s.body.read(&mut [0; 16]).expect_err("nothing after the stall");
    assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err:?}");
    assert_eq!(hub.stats().open_connections, 1);
    // The stall never ends on its own: any close seen was seen on the socket.
    let c = drop_and_see_client_close(&hub, s);
    assert_eq!(c.bytes_sent, 64 << 10);
}

#[test]
fn wrong_bytes_keep_the_size_but_break_the_sha() {
    let hub = hub();
    hub.set_fault("model.gguf", Fault::WrongBytes, 1);
    let (got, err) = drain(&cdn_location(&hub, "model.gguf"));
    assert_eq!((got.len() as u64, err), (SIZE, None));
    assert_ne!(sha256(&got), hub.sha256(REPO, "model.gguf"));
}

#[test]
fn status_and_ignore_range_faults() {
    let hub = hub();
    hub.set_fault("model.gguf", Fault::Status(503), 1);
    hub.set_fault("model.gguf", Fault::IgnoreRange, 1);
    let url = cdn_location(&hub, "model.gguf");
    assert_eq!(http::get(&url).status, 503);
    let r = request("GET", &url, &[("Range", "bytes=100-")], None).expect("get");
    assert_eq!((r.status, r.body.len() as u64, r.header("content-range")), (200, SIZE, None));
    let r = request("GET", &url, &[("Range", "bytes=100-")], None).expect("get");
    assert_eq!(r.status, 206);
}

#[test]
fn faults_apply_to_non_lfs_files_on_the_hub() {
    let hub = hub();
    let url = format!("{}/{REPO}/resolve/main/config.json", hub.endpoint());
    hub.set_fault("config.json", Fault::Status(500), 1);
    hub.set_fault("config.json", Fault::WrongBytes, 1);
    hub.set_fault("config.json", Fault::TruncateAfter(10), 1);
    assert_eq!(http::get(&url).status, 500);
    let wrong = http::get(&url);
    assert_ne!(wrong.body, hub.file_bytes(REPO, "config.json"));
    assert_eq!(wrong.body.len(), hub.file_bytes(REPO, "config.json").len());
    let (got, err) = drain(&url);
    assert_eq!((got.len(), err), (10, Some(ErrorKind::UnexpectedEof)));
    assert_eq!(http::get(&url).body, hub.file_bytes(REPO, "config.json"));
}
