//! Self-tests of the fake hub: it must answer like huggingface.co and its CDN, inject faults
//! exactly, and report what it saw, or every other test proves nothing.

mod cdn;
mod faults;
mod resolve;

use sha2::{Digest, Sha256};

use crate::harness::http;
use crate::harness::{FakeHub, HubConfig, RepoSpec};

/// The demo repo every self-test uses.
const REPO: &str = "rbee-test/tiny-model";
/// Size of its `model.gguf`.
const SIZE: u64 = 4 << 20;
/// How soon the hub must see a client's close: far below what a throttled or stalled body would
/// take, so only a close seen on the socket passes; generous for a loaded 2-core machine.
const CLOSE_SEEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Drops the client side of the hub's first CDN connection, `s`, and checks the hub saw it closed
/// by the client, mid-body, within [`CLOSE_SEEN_WITHIN`]; returns that connection's record.
#[track_caller]
fn drop_and_see_client_close(hub: &FakeHub, s: http::Streaming) -> rbee_tests::hub::Connection {
    let dropped = std::time::Instant::now();
    drop(s);
    let closed = hub.wait_closed(0, crate::harness::TIMEOUT).expect("close seen");
    assert!(closed.saturating_duration_since(dropped) < CLOSE_SEEN_WITHIN, "{:?}", closed - dropped);
    let c = hub.connections()[0].clone();
    assert_eq!(c.close, Some(crate::harness::CloseReason::ClientClosed), "{c:?}");
    assert!(c.closed_by_client() && c.cancelled_mid_body(), "{c:?}");
    c
}

fn hub() -> FakeHub {
    let hub = FakeHub::start(HubConfig::default());
    hub.add_repo(RepoSpec::demo(REPO, SIZE));
    hub
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The CDN URL `HEAD resolve` redirects `file` to.
#[track_caller]
fn cdn_location(hub: &FakeHub, file: &str) -> String {
    let r = http::head(&format!("{}/{REPO}/resolve/main/{file}", hub.endpoint()));
    assert_eq!(r.status, 302, "{r:?}");
    r.header("location").expect("Location").to_owned()
}
