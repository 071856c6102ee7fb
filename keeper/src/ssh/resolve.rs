//! An alias means what OpenSSH says it means: `ssh -G <alias>` prints the configuration it would
//! use (after Include, Match and wildcards), and the keeper reads `hostname`, `user` and `port`
//! from it. ssh's config is never parsed here.

use std::time::Duration;

use anyhow::Result;

use super::exec::run;
use super::{Ssh, SshError};

/// A host as ssh will reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Host {
    /// What the user typed (`--host gpu-box`).
    pub(crate) alias: String,
    pub(crate) hostname: String,
    pub(crate) user: String,
    pub(crate) port: u16,
}

impl Host {
    /// `user@hostname` (with `:port` when not 22), for messages.
    pub(crate) fn at(&self) -> String {
        let port = if self.port == 22 { String::new() } else { format!(":{}", self.port) };
        format!("{}@{}{port}", self.user, self.hostname)
    }
}

/// `ssh -G alias`, read.
pub(super) fn resolve(ssh: &Ssh, alias: &str) -> Result<Host> {
    let mut cmd = ssh.command();
    cmd.arg("-G").arg(alias);
    let ran = run(&mut cmd, Vec::new(), Duration::from_secs(10))?;
    let failed = |why: String| {
        let message =
            format!("`{} -G {alias}` could not read the ssh configuration for `{alias}`: {why}", ssh.program());
        SshError::new(message, &["check ~/.ssh/config (and RBEE_SSH_COMMAND)".to_owned()])
    };
    let Some(ran) = ran.filter(|r| r.ok()) else {
        return Err(failed("it failed or hung".to_owned()).into());
    };
    parse(alias, &ran.stdout).ok_or_else(|| failed("no hostname, user and port in its output".to_owned()).into())
}

fn parse(alias: &str, config: &str) -> Option<Host> {
    let value = |key: &str| {
        config.lines().find_map(|l| l.split_once(' ').filter(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
    };
    Some(Host {
        alias: alias.to_owned(),
        hostname: value("hostname")?.trim().to_owned(),
        user: value("user")?.trim().to_owned(),
        port: value("port")?.trim().parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_ssh_says() {
        let out = "user me\nhostname 10.0.0.2\nport 2222\nidentityfile ~/.ssh/id_ed25519\n";
        let host = parse("gpu", out).unwrap();
        assert_eq!(host.at(), "me@10.0.0.2:2222");
        assert_eq!(parse("gpu", "user me\n"), None);
    }
}
