//! The clap root: global flags and the three nouns (`model`, `job`, `hive`).

use clap::{Args, Parser, Subcommand};

use crate::client::DEFAULT_ADDR;
use crate::commands::{hive::HiveCommand, job::JobCommand, model::ModelCommand};

/// rbee: download and manage models through an rbee hive.
#[derive(Debug, Parser)]
#[command(name = "rbee", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Hive to talk to: `localhost` (the local hive at --local-addr, started on demand), an SSH
    /// alias (a bare name, or ssh://alias[:port]: the hive on that machine's loopback, through an
    /// ssh tunnel), host:port, or a URL (plain HTTP)
    #[arg(
        long,
        short = 'a',
        visible_alias = "host",
        global = true,
        env = "RBEE_HIVE_URL",
        value_name = "HIVE",
        default_value = "localhost"
    )]
    pub(crate) hive: String,
    /// The ssh command (and its options) that reaches hives on other machines, split like git's
    /// GIT_SSH_COMMAND; rbee always adds `-o BatchMode=yes`
    #[arg(long, global = true, env = "RBEE_SSH_COMMAND", value_name = "COMMAND", default_value = "ssh")]
    pub(crate) ssh_command: String,
    /// Address of the local hive, used (and started on demand) when no --hive is given
    #[arg(long, global = true, env = "RBEE_HIVE_ADDR", value_name = "HOST:PORT", default_value = DEFAULT_ADDR)]
    pub(crate) local_addr: String,
    /// Bearer token for the hive (prefer the environment variable)
    #[arg(long, global = true, env = "RBEE_HIVE_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
    /// Print machine-readable JSON on stdout (job events as NDJSON)
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Print only results and errors
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,
    /// Show more: the module and action header of each of rbee's narrations, dimmed
    #[arg(long, short, global = true)]
    pub(crate) verbose: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Download, list and remove models in the hive's cache
    #[command(subcommand)]
    Model(ModelCommand),
    /// List, inspect, cancel and attach to hive jobs
    #[command(subcommand)]
    Job(JobCommand),
    /// Start, stop and check the hive daemon, here or on another machine over SSH (`--host`)
    #[command(subcommand)]
    Hive(HiveCommand),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_go_anywhere() {
        let cli = Cli::try_parse_from(["rbee", "model", "list", "--json", "--hive", "http://h:1"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.hive, "http://h:1");
        assert_eq!(cli.global.local_addr, "127.0.0.1:7835");
    }
}
