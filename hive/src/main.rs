//! The `rbee-hive` binary: see the library for everything.

fn main() {
    // `--detach`: leave the caller's session before anything else runs (clap parses it again later).
    if std::env::args_os().skip(1).any(|a| a == "--detach") {
        if let Err(e) = nix::unistd::setsid() {
            eprintln!("rbee-hive: --detach: could not start a new session ({e}); continuing in this one");
        }
    }
    std::process::exit(rbee_hive::run(std::env::args_os()));
}
