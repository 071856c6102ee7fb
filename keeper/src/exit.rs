//! Exit codes, which error kind ([`crate::error`]) chooses which, and the one place errors are
//! printed.

use std::process::ExitCode;

pub(crate) use crate::client::Unreachable;
use crate::client::{Cause, NotAHive};
pub(crate) use crate::error::{status_of, JobFailed, StartFailed, StdoutClosed, UsageError};

/// How the keeper ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked (0).
    Ok,
    /// The job or request failed (1).
    Failed,
    /// Bad usage, or the hive could not be reached or refused our token (2).
    Usage,
    /// The user pressed Ctrl+C (130).
    Cancelled,
    /// Stdout was closed (`rbee … | head`): 141, what a shell reports for a tool killed by SIGPIPE.
    PipeClosed,
}

impl Exit {
    /// The numeric process exit code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failed => 1,
            Self::Usage => 2,
            Self::Cancelled => 130,
            Self::PipeClosed => 141,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// The exit code an error maps to.
pub(crate) fn classify(err: &anyhow::Error) -> Exit {
    // A hive that refuses our token cannot be used at all: like an unreachable one, that is a
    // setup problem (exit 2), not a failed job.
    if err.chain().any(|c| c.is::<StdoutClosed>()) {
        return Exit::PipeClosed;
    }
    let setup = |c: &(dyn std::error::Error + 'static)| {
        c.is::<Unreachable>()
            || c.is::<UsageError>()
            || c.is::<NotAHive>()
            || c.is::<StartFailed>()
            || c.is::<crate::ssh::SshError>()
    };
    let usage = err.chain().any(setup) || matches!(status_of(err), Some(401 | 403));
    if usage {
        Exit::Usage
    } else {
        Exit::Failed
    }
}

/// What the user can do about `err`, when there is something.
pub(crate) fn hint(err: &anyhow::Error) -> Option<&'static str> {
    if let Some(down) = err.chain().find_map(|c| c.downcast_ref::<Unreachable>()) {
        return Some(match down.cause {
            Cause::Tls(_) => "use http:// in --hive / RBEE_HIVE_URL",
            Cause::Timeout => "check that the host is up and that no firewall drops connections to its port",
            Cause::Resolve => "check the host name in --hive / RBEE_HIVE_URL",
            Cause::NoAnswer => "check that --hive / RBEE_HIVE_URL names a hive; a stuck one says why in its log",
            Cause::Refused(_) | Cause::Other(_) | Cause::Connected => {
                "start one with `rbee hive start`, or point `--hive` / RBEE_HIVE_URL at a running hive"
            }
        });
    }
    match status_of(err) {
        Some(401 | 403) => Some("set RBEE_HIVE_TOKEN to the hive's token"),
        _ => None,
    }
}

/// Print `err` once, with its whole cause chain, plus a hint line where one helps. A closed stdout
/// was already explained where it happened.
pub(crate) fn report(err: &anyhow::Error) {
    if err.chain().any(|c| c.is::<StdoutClosed>()) {
        return;
    }
    crate::render::warn(&format!("rbee: error: {err:#}"));
    if let Some(hint) = hint(err) {
        crate::render::warn(&format!("rbee: hint: {hint}"));
    }
    let ssh = err.chain().find_map(|c| c.downcast_ref::<crate::ssh::SshError>());
    for line in ssh.iter().flat_map(|e| &e.advice) {
        crate::render::warn(&format!("rbee: hint: {}", rbee_protocol::escape(line)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::HiveError;
    use anyhow::Context;

    #[test]
    fn codes() {
        let codes: Vec<_> =
            [Exit::Ok, Exit::Failed, Exit::Usage, Exit::Cancelled, Exit::PipeClosed].map(Exit::code).into();
        assert_eq!(codes, [0, 1, 2, 130, 141]);
    }

    #[test]
    fn errors_map_through_context() {
        let down = Unreachable { url: "http://x".into(), cause: Cause::Refused("connection refused".into()) };
        let err = Err::<(), _>(down).context("listing jobs").unwrap_err();
        assert_eq!(classify(&err), Exit::Usage);
        assert!(hint(&err).unwrap().contains("rbee hive start"));
        assert_eq!(classify(&UsageError("bad".into()).into()), Exit::Usage);
        assert_eq!(classify(&JobFailed("boom".into()).into()), Exit::Failed);
        assert_eq!(classify(&anyhow::anyhow!("other")), Exit::Failed);
        let tls = Unreachable { url: "https://x".into(), cause: Cause::Tls("wrong version number".into()) };
        assert_eq!(hint(&tls.into()), Some("use http:// in --hive / RBEE_HIVE_URL"));
        assert_eq!(classify(&StdoutClosed.into()), Exit::PipeClosed);
    }

    #[test]
    fn auth_errors_hint_at_the_token() {
        let err: anyhow::Error = HiveError { status: 401, message: "no token".into(), api: None }.into();
        assert_eq!(hint(&err), Some("set RBEE_HIVE_TOKEN to the hive's token"));
        assert_eq!(classify(&err), Exit::Usage);
    }
}
