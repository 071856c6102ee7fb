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
