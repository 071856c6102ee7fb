//! The error codes of the hive's JSON error bodies, each with its HTTP status.

/// What went wrong, as `{"error": "<code>", …}` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not an operation (400).
    InvalidOperation,
    /// A repo id, file or revision could escape the cache or is not a HF name (400).
    InvalidName,
    /// A query string is malformed (400).
    InvalidQuery,
    /// The body could not be read (400).
    BadBody,
    /// The body is over the limit (413).
    BodyTooLarge,
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// No such route (404).
    NotFound,
    /// No such job (404).
    JobNotFound,
    /// The repo is not cached (404).
    ModelNotFound,
    /// The file is not cached (404).
    FileNotFound,
    /// The revision (branch, tag or commit) is not cached (404).
    RevisionNotFound,
    /// A `Range` outside the file (416).
    RangeNotSatisfiable,
    /// The hive's own upstream failed while it pulled a file through (502).
    UpstreamError,
    /// The route does not take this method (405).
    MethodNotAllowed,
    /// The job had already ended (409).
    JobEnded,
    /// The cache could not be read or changed (500).
    CacheError,
    /// The request could not be parsed as HTTP (400).
    BadRequest,
    /// Several `Authorization` headers (400).
    AmbiguousAuthorization,
    /// A `Host` this hive does not answer to (DNS rebinding) (403).
    HostNotAllowed,
    /// A foreign `Origin` or `Sec-Fetch-Site: cross-site` (403).
    CrossOrigin,
    /// The request's head or body stalled past the limit (408).
    RequestTimeout,
    /// What would be removed is being downloaded (409).
    ModelInUse,
    /// A cache directory is a symlink; nothing is scanned or removed through it (409).
    SymlinkRefused,
    /// A POST body that is not `application/json` (415).
    UnsupportedMediaType,
    /// An HTTP method this server does not know (501).
    MethodNotImplemented,
}

impl ErrorCode {
    /// The `error` field.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidOperation => "invalid_operation",
            Self::InvalidName => "invalid_name",
            Self::InvalidQuery => "invalid_query",
            Self::BadBody => "bad_body",
            Self::BodyTooLarge => "body_too_large",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::JobNotFound => "job_not_found",
            Self::ModelNotFound => "model_not_found",
            Self::FileNotFound => "file_not_found",
            Self::RevisionNotFound => "revision_not_found",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::UpstreamError => "upstream_error",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::JobEnded => "job_ended",
            Self::CacheError => "cache_error",
            Self::BadRequest => "bad_request",
            Self::AmbiguousAuthorization => "ambiguous_authorization",
            Self::HostNotAllowed => "host_not_allowed",
            Self::CrossOrigin => "cross_origin",
            Self::RequestTimeout => "request_timeout",
            Self::ModelInUse => "model_in_use",
            Self::SymlinkRefused => "symlink_refused",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::MethodNotImplemented => "method_not_implemented",
        }
    }

    /// The HTTP status it is answered with.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidOperation
            | Self::InvalidName
            | Self::InvalidQuery
            | Self::BadBody
            | Self::BadRequest
            | Self::AmbiguousAuthorization => 400,
            Self::HostNotAllowed | Self::CrossOrigin => 403,
            Self::RequestTimeout => 408,
            Self::ModelInUse | Self::SymlinkRefused => 409,
            Self::UnsupportedMediaType => 415,
            Self::MethodNotImplemented => 501,
            Self::Unauthorized => 401,
            Self::NotFound | Self::JobNotFound | Self::ModelNotFound | Self::FileNotFound | Self::RevisionNotFound => {
                404
            }
            Self::RangeNotSatisfiable => 416,
            Self::UpstreamError => 502,
            Self::MethodNotAllowed => 405,
            Self::JobEnded => 409,
            Self::BodyTooLarge => 413,
            Self::CacheError => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
