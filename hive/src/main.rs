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
    std::process::exit(rbee_hive::run(std::env::args_os()));
}
