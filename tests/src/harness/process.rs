//! What a process uses, read from `/proc`: resident memory, CPU time, open descriptors; and a
//! child that goes when its test does. Shared by the e2e tests and `rbee-bench`.

use std::collections::BTreeMap;
use std::fs;
use std::process::Child;

/// A child process, killed and reaped when this is dropped: a test that fails leaves none behind.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Clock ticks per second of `/proc/*/stat` (100 on every Linux this runs on).
const TICKS: f64 = 100.0;

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …).
#[must_use]
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Resident set size of `pid` in KiB (`VmRSS`).
///
/// # Panics
/// When `pid` has no `/proc` entry.
#[must_use]
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS").unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
}

/// Peak resident set size of `pid` in KiB (`VmHWM`), 0 when unknown.
#[must_use]
pub fn hwm_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM").unwrap_or(0)
}

/// User + system CPU seconds of `pid` so far.
#[must_use]
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let fields: Vec<u64> = after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    #[allow(clippy::cast_precision_loss)]
    Some((fields.get(11)? + fields.get(12)?) as f64 / TICKS)
}

/// Open file descriptors of `pid`.
#[must_use]
pub fn fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}

/// Open file descriptors of `pid` by kind (`socket`, `pipe`, `anon_inode:[eventfd]`, paths…).
#[must_use]
pub fn fd_kinds(pid: u32) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for e in fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
        let target = fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default();
        let kind = target.split(":[").next().unwrap_or_default().to_owned();
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}
