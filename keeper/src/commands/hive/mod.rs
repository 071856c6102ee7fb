//! `rbee hive …`: start, stop and check the hive daemon; on another machine (`--host <ssh
//! alias>`) also install and uninstall it.

mod install;
mod remote;
mod restart;
mod start;
mod status;
mod stop;
mod uninstall;

pub(crate) use remote::remote_up;

use anyhow::Result;

use super::Ctx;
use crate::exit::UsageError;
use crate::ssh::Remote;

verbs! {
    HiveCommand {
        /// Copy rbee-hive to an SSH host (`--host A`)
        Install(install::Args),
        /// Start a hive in the background (or in the foreground); on an SSH host with `--host A`
        Start(start::Args),
        /// Show whether the hive is up, its version, pid and job counts
        Status(status::Args),
        /// Ask the hive to shut down and wait until it has
        Stop(stop::Args),
        /// Stop the hive, then start it again with this shell's HF settings
        Restart(restart::Args),
        /// Stop the hive on an SSH host and remove its rbee-hive (`--host A`)
        Uninstall(uninstall::Args),
    }
}

/// The SSH host a verb needs (`install`, `uninstall`), or a usage error saying so.
fn needs_host<'c>(ctx: &'c Ctx, verb: &str) -> Result<&'c Remote> {
    let message = format!("`rbee hive {verb}` works on another machine: add `--host <ssh alias>`");
    ctx.remote.as_ref().ok_or_else(|| UsageError(message).into())
}
