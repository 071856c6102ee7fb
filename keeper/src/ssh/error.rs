//! ssh's failures in words that say what to do. ssh exits 255 for its own errors (anything else
//! is the remote command's code); its last stderr line says why, and the keeper quotes it.

use super::exec::{Ran, SSH_DEADLINE};
use super::Host;

/// An ssh exchange failed (exit 2). `advice` lines follow the error as hints.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct SshError {
    pub(crate) message: String,
    pub(crate) advice: Vec<String>,
}

impl SshError {
    pub(crate) fn new(message: String, advice: &[String]) -> Self {
        Self { message, advice: advice.to_vec() }
    }

    /// Why `ran` (an ssh run while `doing` something on `host`, `None` if it outlived its
    /// deadline) failed.
    pub(super) fn from_run(host: &Host, doing: &str, ran: Option<&Ran>) -> Self {
        let alias = &host.alias;
        let Some(ran) = ran else {
            let message = format!("ssh to `{alias}` did not finish within {SSH_DEADLINE:?} while {doing}");
            return Self::new(message, &[format!("check that {} is up: `ssh {alias} true`", host.at())]);
        };
        let said = last_line(&ran.stderr);
        if said.contains("Permission denied") {
            let message = format!("ssh refused {} while {doing}: {said}", host.at());
            return Self::new(
                message,
                &[format!(
                    "check that your public key is in {}'s ~/.ssh/authorized_keys on {} and that your agent holds \
                 it (`ssh-add -l`), or name the key with IdentityFile in ~/.ssh/config",
                    host.user, host.hostname
                )],
            );
        }
        if said.contains("Host key verification failed") || said.contains("REMOTE HOST IDENTIFICATION") {
            let message = format!("ssh does not trust the host key of {} while {doing}: {said}", host.at());
            let advice = format!("connect once with `ssh {alias}` to check and accept its key (rbee never prompts)");
            return Self::new(message, &[advice]);
        }
        let message = format!("ssh cannot reach `{alias}` ({}) while {doing}: {said}", host.at());
        Self::new(message, &config_snippet(alias))
    }
}

/// The `~/.ssh/config` lines that would teach ssh an alias.
fn config_snippet(alias: &str) -> Vec<String> {
    vec![
        format!("if `{alias}` is one of your machines, tell ssh how to reach it in ~/.ssh/config:"),
        format!("    Host {alias}"),
        "        HostName <its address>".to_owned(),
        "        User <your user there>".to_owned(),
        format!("then check that `ssh {alias} true` works without a prompt"),
    ]
}

/// The last non-empty line of `text` (ssh's reason), or a word that it said nothing.
fn last_line(text: &str) -> String {
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty());
    line.map_or_else(|| "ssh exited without a word".to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host { alias: "gpu".into(), hostname: "10.0.0.2".into(), user: "me".into(), port: 22 }
    }

    fn failed(stderr: &str) -> SshError {
        let ran = Ran { code: Some(255), stdout: String::new(), stderr: stderr.into() };
        SshError::from_run(&host(), "starting the hive", Some(&ran))
    }

    #[test]
    fn each_failure_says_what_to_do() {
        let auth = failed("me@10.0.0.2: Permission denied (publickey).\n");
        assert!(auth.message.contains("refused me@10.0.0.2"), "{}", auth.message);
        assert!(auth.advice[0].contains("authorized_keys") && auth.advice[0].contains("ssh-add"));
        let gone = failed("ssh: Could not resolve hostname gpu: Name or service not known\n");
        assert!(gone.message.contains("cannot reach `gpu`") && gone.message.contains("Could not resolve"));
        assert!(gone.advice.iter().any(|l| l.trim() == "Host gpu"), "{:?}", gone.advice);
        let late = SshError::from_run(&host(), "x", None);
        assert!(late.message.contains("did not finish"), "{}", late.message);
    }
}
