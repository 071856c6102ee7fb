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
    /// The route does not take this method (405).
    MethodNotAllowed,
    /// The job had already ended (409).
    JobEnded,
    /// The cache could not be read or changed (500).
    CacheError,
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
            Self::MethodNotAllowed => "method_not_allowed",
            Self::JobEnded => "job_ended",
            Self::CacheError => "cache_error",
        }
    }

    /// The HTTP status it is answered with.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidOperation | Self::InvalidName | Self::InvalidQuery | Self::BadBody => 400,
            Self::Unauthorized => 401,
            Self::NotFound | Self::JobNotFound | Self::ModelNotFound | Self::FileNotFound => 404,
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
