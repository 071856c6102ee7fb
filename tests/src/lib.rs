//! Test support for rbee: a fake HuggingFace hub ([`hub::FakeHub`]) that the end-to-end tests
//! (in `tests/e2e`) run in-process, and that the `fake-hub` binary serves for `just demo` and
//! benchmarks.
//!
//! ```no_run
//! use rbee_tests::hub::{FakeHub, RepoSpec};
//! let hub = FakeHub::start(Default::default());
//! hub.add_repo(RepoSpec::demo("org/model", 1 << 20));
//! println!("HF_ENDPOINT={}", hub.endpoint());
//! ```

pub mod hub;
