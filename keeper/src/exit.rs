//! Exit codes, the error kinds that choose them, and the one place errors are printed.

use std::process::ExitCode;

use crate::client::status_of;

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
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// Nothing answered at the hive's address (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the hive at {url}: {reason}")]
pub(crate) struct Unreachable {
    pub(crate) url: String,
    pub(crate) reason: String,
}

/// The command line asked for something invalid (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// The job ended with an error or was cancelled on the hive (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct JobFailed(pub(crate) String);

/// The exit code an error maps to.
pub(crate) fn classify(err: &anyhow::Error) -> Exit {
    // A hive that refuses our token cannot be used at all: like an unreachable one, that is a
    // setup problem (exit 2), not a failed job.
    let usage =
        err.chain().any(|c| c.is::<Unreachable>() || c.is::<UsageError>()) || matches!(status_of(err), Some(401 | 403));
    if usage {
        Exit::Usage
    } else {
        Exit::Failed
    }
}

/// What the user can do about `err`, when there is something.
pub(crate) fn hint(err: &anyhow::Error) -> Option<&'static str> {
    if err.chain().any(|c| c.is::<Unreachable>()) {
        return Some("start one with `rbee hive start`, or point `--hive` / RBEE_HIVE_URL at a running hive");
    }
    match status_of(err) {
        Some(401 | 403) => Some("set RBEE_HIVE_TOKEN to the hive's token"),
        _ => None,
    }
}

/// Print `err` once, with its whole cause chain, plus a hint line where one helps.
pub(crate) fn report(err: &anyhow::Error) {
    eprintln!("rbee: error: {}", rbee_protocol::escape(&format!("{err:#}")));
    if let Some(hint) = hint(err) {
        eprintln!("rbee: hint: {hint}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::HiveError;
    use anyhow::Context;

    #[test]
    fn codes() {
        let codes: Vec<_> = [Exit::Ok, Exit::Failed, Exit::Usage, Exit::Cancelled].map(Exit::code).into();
        assert_eq!(codes, [0, 1, 2, 130]);
    }

    #[test]
    fn errors_map_through_context() {
        let down = Unreachable { url: "http://x".into(), reason: "refused".into() };
        let err = Err::<(), _>(down).context("listing jobs").unwrap_err();
        assert_eq!(classify(&err), Exit::Usage);
        assert!(hint(&err).unwrap().contains("rbee hive start"));
        assert_eq!(classify(&UsageError("bad".into()).into()), Exit::Usage);
        assert_eq!(classify(&JobFailed("boom".into()).into()), Exit::Failed);
        assert_eq!(classify(&anyhow::anyhow!("other")), Exit::Failed);
    }

    #[test]
    fn auth_errors_hint_at_the_token() {
        let err: anyhow::Error = HiveError { status: 401, message: "no token".into(), api: None }.into();
        assert_eq!(hint(&err), Some("set RBEE_HIVE_TOKEN to the hive's token"));
        assert_eq!(classify(&err), Exit::Usage);
    }
}
