//! Test support for rbee, one house for the end-to-end tests (`tests/e2e`) and the `rbee-bench`
//! benchmarks: a fake HuggingFace hub ([`hub::FakeHub`], also served by the `fake-hub` binary for
//! `just demo`), and the [`harness`] that runs the real binaries (hive, keeper, pty), talks HTTP
//! and SSE, and reads what processes use (RSS, descriptors).
//!
//! ```no_run
//! use rbee_tests::hub::{FakeHub, RepoSpec};
//! let hub = FakeHub::start(Default::default());
//! hub.add_repo(RepoSpec::demo("org/model", 1 << 20));
//! println!("HF_ENDPOINT={}", hub.endpoint());
//! ```

pub mod harness;
pub mod hub;
