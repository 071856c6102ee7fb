//! The `rbee-hive` binary: see the library for everything.

fn main() {
    // Error values capture no backtrace unless `RUST_LIB_BACKTRACE` asks for them (a panic still
    // gets its own under `RUST_BACKTRACE`): the hive never shows one, capturing costs a stack walk
    // per error, and a dependency that formats an error with `{:?}` would resolve it, which parses
    // libc's debug info into some 30 MiB the process keeps (BENCHMARKS.md 13c). Set here, before
    // any thread exists.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    cap_malloc_arenas();
    std::process::exit(rbee_hive::run(std::env::args_os()));
}

/// glibc gives each thread that allocates an arena of its own (up to 8 per core), and each arena
/// keeps much of what was freed in it: the hive's peak RSS then grows with how many threads (a
/// curl thread per part, the blocking pool that writes and hashes) ever touched the heap, not
/// with what it holds. Two arenas make it depend on the buffers alone (BENCHMARKS.md 13d: the
/// resume's peak with both cores busy 17.5–19.4 MiB, against 19.5–24.0 MiB with glibc's
/// default), at no measured cost in speed. A user's own `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES`
/// is left to glibc. Called before any other thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn cap_malloc_arenas() {
    let tuned = std::env::var_os("GLIBC_TUNABLES").is_some_and(|t| t.to_string_lossy().contains("arena_max"));
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() && !tuned {
        // SAFETY: `mallopt` only sets one of malloc's parameters; no other thread is running yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_malloc_arenas() {}
