//! End-to-end tests of the real `rbee` and `rbee-hive` binaries against the fake hub.
//! One test binary (compiled once); each area of behaviour is a module.

use rbee_tests::harness;

mod auth_token;
mod autostart;
mod bad_input;
mod browser;
mod cancel;
mod chaos;
mod dedupe;
mod download;
mod errors;
mod events;
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
mod operator;
mod page;
mod parallel;
mod parity;
mod parity_net;
mod rbee_wire;
mod reconnect;
mod repo;
mod resume;
mod retention;
mod retry;
mod stream;
mod tls;
mod tty;
