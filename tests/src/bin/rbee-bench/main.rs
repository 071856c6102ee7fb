//! `rbee-bench`: the benchmark driver behind `just bench` (see `bench/run.sh`).
//!
//! Each subcommand measures one thing against the release binaries next to this executable and
//! a [`FakeHub`](rbee_tests::hub::FakeHub) running in this process (so the hub's timestamps and
//! ours share one clock), then prints a Markdown section on stdout. Progress goes to stderr.
//!
//! ```text
//! rbee-bench --tmp /dev/shm/x --venv .venv cancel      # 100 Ctrl+C trials
//! rbee-bench --quick --tmp /tmp/x download             # smoke-sized throughput + memory run
//! ```

mod cancel;
mod cdn;
mod download;
mod durable;
mod footprint;
mod mirror;
mod paced;
mod page;
mod proc;
mod resume;
mod scale;
mod sigint;
mod ssh;
mod table;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks for rbee; each subcommand prints a Markdown section.
#[derive(Debug, Parser)]
#[command(name = "rbee-bench")]
struct Cli {
    #[command(flatten)]
    ctx: proc::Ctx,
    #[command(subcommand)]
    section: Section,
}

#[derive(Debug, Subcommand)]
enum Section {
    /// Binary sizes and `--version` start-up time
    Footprint,
    /// Ctrl+C → upstream connection closed / keeper exited
    Cancel,
    /// Cancel at ~50 %, download again: bytes fetched vs bytes missing
    Resume,
    /// Throughput vs curl / huggingface_hub / hf_transfer, CPU and peak memory
    Download,
    /// Hive peak memory with 100 concurrent jobs
    Concurrent,
    /// nginx as the CDN, capped per connection and not: rbee in parts vs aria2c, hf_transfer, curl
    Cdn,
    /// A CDN pacing every request from its first byte (the fake hub's): rbee vs aria2c, hf_transfer
    CdnPaced,
    /// SSE fan-out to 1000 subscribers and jobs/s for tiny files
    Scale,
    /// Ctrl+C → remote upstream connection closed, through an SSH tunnel (root, sshd, iproute2)
    Ssh,
    /// The HF mirror serving a 2 GiB blob vs nginx (needs `nginx`: bench/mirror.sh)
    Mirror {
        /// The blob's size in MiB [default: 2048, 256 with --quick]
        #[arg(long)]
        mib: Option<u64>,
        /// Downloads from each server [default: 7, 2 with --quick]
        #[arg(long)]
        runs: Option<usize>,
        /// Keep one core busy (a shell spinning) while measuring
        #[arg(long)]
        busy: bool,
    },
    /// What fsync costs: a 2 GiB download into a cache on a real disk, with and without
    Durable {
        /// A directory on a real disk (not tmpfs, where fsync costs nothing)
        #[arg(long, default_value = "/var/tmp")]
        disk: PathBuf,
    },
    /// The hive's page in headless Chromium: hub byte → bar moving, 50 bars at once
    Page,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = cli.ctx;
    let out = match cli.section {
        Section::Footprint => footprint::run(&ctx),
        Section::Cancel => cancel::run(&ctx),
        Section::Resume => resume::run(&ctx),
        Section::Download => download::run(&ctx),
        Section::Concurrent => download::concurrent(&ctx),
        Section::Cdn => cdn::run(&ctx),
        Section::CdnPaced => paced::run(&ctx),
        Section::Scale => scale::run(&ctx),
        Section::Mirror { mib, runs, busy } => mirror::run(&ctx, mirror::Plan { mib, runs, busy }),
        Section::Durable { disk } => durable::run(&ctx, &disk),
        Section::Ssh => ssh::run(&ctx),
        Section::Page => page::run(&ctx),
    };
    match out {
        Ok(md) => {
            print!("{md}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rbee-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
