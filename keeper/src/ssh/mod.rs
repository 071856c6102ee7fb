//! Hives on other machines, reached through OpenSSH: the keeper never speaks SSH itself, it runs
//! the user's `ssh` (`RBEE_SSH_COMMAND`, default `ssh`, split the way git splits
//! `GIT_SSH_COMMAND`), always with `BatchMode=yes` so no prompt can hang it.
//!
//! - [`resolve`]: an alias means what `ssh -G <alias>` says (Include, Match and wildcards for free).
//! - [`tunnel`]: one ControlMaster per alias (ControlPersist 60 s, its socket in the keeper's state
//!   dir) and, on it, one forward `unix socket → remote 127.0.0.1:<port>` per hive port. Every
//!   request to a hive on that alias (jobs, their streams, Ctrl+C's DELETE) goes through it.
//! - [`remote`]: the few shell scripts run on the remote (install, start, stop, uninstall). A
//!   secret (`HF_TOKEN`) travels on the channel's stdin, never on a command line.
//! - [`error`]: ssh's failures, each saying what to do.
//!
//! ```text
//! rbee hive install --host gpu-box && rbee hive start --host gpu-box
//! rbee model download --hive gpu-box org/repo model.gguf
//! ```

mod error;
mod exec;
pub(crate) mod remote;
mod resolve;
mod tunnel;

use std::path::{Path, PathBuf};

use anyhow::Result;

pub(crate) use error::SshError;
pub(crate) use resolve::Host;

/// The user's ssh command line, and where the keeper keeps its control sockets.
#[derive(Debug, Clone)]
pub(crate) struct Ssh {
    argv: Vec<String>,
    state: PathBuf,
}

/// A hive host reached over ssh: who it is and the tunnel to its hive port.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    pub(crate) ssh: Ssh,
    pub(crate) host: Host,
    /// The hive's port on the remote's loopback.
    pub(crate) port: u16,
    /// The local end of the tunnel to it.
    pub(crate) socket: PathBuf,
}

impl Remote {
    /// What `--hive` takes to come back here: the alias, with the port when not the default.
    pub(crate) fn flag(&self) -> String {
        if self.port == rbee_protocol::DEFAULT_HIVE_PORT {
            self.host.alias.clone()
        } else {
            format!("ssh://{}:{}", self.host.alias, self.port)
        }
    }
}

impl Ssh {
    /// `command_line` as `RBEE_SSH_COMMAND` gives it; control sockets under `state`.
    pub(crate) fn new(command_line: &str, state: &Path) -> Result<Self> {
        let argv = exec::split(command_line)?;
        Ok(Self { argv, state: state.to_owned() })
    }
}

/// Resolve `alias`, make sure its master connection and the tunnel to `port` are up (starting
/// them on demand, reusing them when another command did), and return the way to the hive.
pub(crate) async fn connect(ssh: &Ssh, alias: &str, port: u16) -> Result<Remote> {
    let (ssh, alias) = (ssh.clone(), alias.to_owned());
    smol::unblock(move || {
        let host = resolve::resolve(&ssh, &alias)?;
        let socket = tunnel::open(&ssh, &host, port)?;
        Ok(Remote { ssh, host, port, socket })
    })
    .await
}

/// The keeper's state directory: `$XDG_STATE_HOME/rbee`, else `~/.local/state/rbee`.
pub(crate) fn state_dir() -> PathBuf {
    let nonempty = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let state = nonempty("XDG_STATE_HOME").or_else(|| nonempty("HOME").map(|h| h.join(".local/state")));
    state.unwrap_or_else(std::env::temp_dir).join("rbee")
}
