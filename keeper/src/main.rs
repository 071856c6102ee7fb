use std::process::ExitCode;

fn main() -> ExitCode {
    rbee_keeper::run(std::env::args_os())
}
