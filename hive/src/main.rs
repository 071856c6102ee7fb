//! The `rbee-hive` binary: see the library for everything.

fn main() {
    std::process::exit(rbee_hive::run(std::env::args_os()));
}
