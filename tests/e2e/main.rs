//! End-to-end tests of the real `rbee` and `rbee-hive` binaries against the fake hub.
//! One test binary (compiled once); each area of behaviour is a module.

use rbee_tests::harness;

mod architecture;
mod auth_token;
mod autostart;
mod bad_input;
mod browser;
mod cancel;
mod cancel_kept;
mod chaos;
mod dedupe;
mod download;
mod durable;
mod errors;
mod heartbeat;
mod hive_auth;
mod hostile;
mod hub_selftest;
mod interop;
mod jobs_api;
mod keeper_cli;
mod load;
mod mirror;
mod models;
mod no_panic;
mod operator;
mod parallel;
mod parity;
mod parity_net;
mod quarantine;
mod queue;
mod rbee_wire;
mod reconnect;
mod repo;
mod resume;
mod retention;
mod retry;
mod state_files;
mod stream;
mod strict_http;
mod symlinks;
mod tls;
mod tty;
mod upstream_checks;
