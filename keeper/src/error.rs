//! The keeper's error kinds, on the ground floor: the client raises them, `exit` maps them to
//! exit codes and hints, `render` raises [`StdoutClosed`]; none of those needs another for them.

use rbee_protocol::ApiError;

/// The hive answered with a non-2xx status.
#[derive(Debug, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub(crate) struct HiveError {
    pub(crate) status: u16,
    pub(crate) message: String,
    pub(crate) api: Option<ApiError>,
}

/// The hive does not know this job (404).
#[derive(Debug, thiserror::Error)]
#[error("no job {0}")]
pub(crate) struct NoSuchJob(pub(crate) String);

/// Stdout was closed while the keeper wrote to it (exit 141).
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub(crate) struct StdoutClosed;

/// Errors whose message is the whole story: the type tells `exit` the code, the text tells the
/// user what happened.
macro_rules! message_errors {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        pub(crate) struct $name(pub(crate) String);
    )+};
}

message_errors! {
    /// The local hive could not be started; the message says why (exit 2).
    StartFailed;
    /// The command line asked for something invalid (exit 2).
    UsageError;
    /// The job ended with an error or was cancelled on the hive (exit 1).
    JobFailed;
}

/// The HTTP status behind `err`, when the hive answered with an error.
pub(crate) fn status_of(err: &anyhow::Error) -> Option<u16> {
    err.chain().find_map(|c| c.downcast_ref::<HiveError>()).map(|e| e.status)
}
