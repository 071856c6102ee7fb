//! Job bookkeeping types: ids, status, replies and error bodies.

use serde::{Deserialize, Serialize};

/// A job id as the hive hands it out (`job-<uuid v4>`).
pub type JobId = String;

/// Reply to `POST /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCreated {
    /// The new job's id.
    pub job_id: JobId,
    /// Path of its event stream, `/v1/jobs/<id>/stream`.
    pub sse_url: String,
}

impl JobCreated {
    /// The reply for `job_id`.
    #[must_use]
    pub fn new(job_id: JobId) -> Self {
        let sse_url = crate::routes::job_stream(&job_id);
        Self { job_id, sse_url }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, not started yet.
    Queued,
    /// Working.
    Running,
    /// Ended with a `done` event.
    Completed,
    /// Ended with an `error` event.
    Failed,
    /// Ended with a `cancelled` event.
    Cancelled,
}

impl JobStatus {
    /// Whether the job has ended.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Lower-case name, as serialized.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Reply to `GET /v1/jobs/{id}` (and each entry of `GET /v1/jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job's id.
    pub job_id: JobId,
    /// Current status.
    pub status: JobStatus,
    /// What it does, e.g. `download org/name/file@main`.
    pub operation: String,
    /// Events emitted so far.
    pub events: u64,
    /// Seconds since the job was created.
    pub age_secs: u64,
    /// The error message, for failed jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// JSON body of every non-2xx reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable machine code, e.g. `not_found`, `bad_request`, `job_ended`.
    pub error: String,
    /// What failed and why, for humans.
    pub message: String,
    /// For `job_ended`: the job's final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
}

impl ApiError {
    /// An error body with `code` and `message`.
    pub fn new(code: crate::ErrorCode, message: impl Into<String>) -> Self {
        Self { error: code.as_str().to_owned(), message: message.into(), status: None }
    }
}

/// One cached file of a repo, as listed by `model_list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedFile {
    /// Path inside the repo.
    pub file: String,
    /// Bytes on disk (for partials: bytes so far).
    pub size: u64,
    /// Commits whose snapshot holds it (empty for partials).
    #[serde(default)]
    pub revisions: Vec<String>,
    /// For a partial (`.incomplete`) download: percent done when the size is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_percent: Option<f64>,
    /// Whether this is an unfinished download.
    #[serde(default)]
    pub partial: bool,
}

/// One cached repo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedRepo {
    /// Repo id, `org/name`.
    pub repo: String,
    /// Total bytes of its blobs (finished and partial).
    pub size: u64,
    /// `refs/` entries: revision name → commit.
    #[serde(default)]
    pub refs: std::collections::BTreeMap<String, String>,
    /// Its files.
    pub files: Vec<CachedFile>,
}

/// Result of `model_list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelListing {
    /// Cache directory listed.
    pub cache_dir: String,
    /// Repos found.
    pub repos: Vec<CachedRepo>,
}

/// Result of `model_delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveReport {
    /// Snapshot links removed.
    pub links: u64,
    /// Blobs removed (no longer referenced).
    pub blobs: u64,
    /// Partial files removed.
    pub partials: u64,
    /// Bytes freed.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_points_at_stream() {
        let c = JobCreated::new("job-1".into());
        assert_eq!(c.sse_url, "/v1/jobs/job-1/stream");
        let back: JobCreated = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn status_is_snake_case() {
        for s in [JobStatus::Queued, JobStatus::Running, JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled]
        {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert!(JobStatus::Cancelled.is_final() && !JobStatus::Running.is_final());
    }
}
