//! End-to-end tests of the real `rbee` and `rbee-hive` binaries against the fake hub.
//! One test binary (compiled once); each area of behaviour is a module.

mod harness;
mod hub_selftest;
