//! `rbee`, the keeper: a command-line client for an `rbee-hive` daemon.
//!
//! It turns subcommands into hive jobs (`POST /v1/jobs`), follows their Server-Sent-Events stream
//! with a progress bar, plain lines or NDJSON, reconnects when the stream drops, and cancels the
//! job on the hive when the user presses Ctrl+C. With no hive configured it uses the local one
//! (`RBEE_HIVE_ADDR`, default `127.0.0.1:7835`), starting `rbee-hive` there when none answers.
//!
//! ```text
//! rbee model download TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF tinyllama.Q4_K_M.gguf
//! rbee job list --json
//! ```
//!
//! Exit codes: 0 ok, 1 the job (or request) failed, 2 usage error, hive unreachable or not a hive,
//! 130 cancelled by Ctrl+C, 141 stdout closed (the job goes on on the hive).
#![forbid(unsafe_code)]

/// `println!` for command results: a closed stdout (`rbee … | head`) becomes
/// [`exit::StdoutClosed`] (exit 141, like any tool whose pipe closed) instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::render::stdout_line(&format!($($arg)*))?
    };
}

mod cli;
mod client;
mod commands;
mod error;
mod exit;
mod file_lock;
mod follow;
mod hive_spawn;
mod render;
mod settings;
mod signals;
mod ssh;

use std::process::ExitCode;

use clap::Parser;

pub use exit::Exit;

/// Parse `args` (the program name first, as `std::env::args_os()` gives them), run the command,
/// report any error; the process's exit code.
#[must_use]
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout (exit 0), usage errors to stderr (exit 2).
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage.into() } else { Exit::Ok.into() };
        }
    };
    match smol::block_on(commands::execute(cli)) {
        Ok(exit) => exit.into(),
        Err(err) => {
            exit::report(&err);
            exit::classify(&err).into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_takes_its_arguments() {
        assert_eq!(run(["rbee", "--version"]), ExitCode::from(0));
        assert_eq!(run(["rbee", "frobnicate"]), ExitCode::from(2));
        // Refused before any request: no hive is needed.
        assert_eq!(run(["rbee", "--hive", "http://127.0.0.1:9", "model", "download", "org/../x"]), ExitCode::from(2));
    }
}
