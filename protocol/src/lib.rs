//! Wire types shared by the `rbee` keeper and the `rbee-hive` daemon, plus the
//! Server-Sent-Events codec they speak: rbee's own job protocol. Pure data: no I/O, no runtime,
//! no env.
//!
//! A job's life on the wire:
//!
//! 1. `POST /v1/jobs` with an [`Operation`] (`{"operation":"model_download","hive_id":"localhost",
//!    "model":"org/repo:file"}`) → `200` [`JobCreated`] (`job_id`, `sse_url`) at once. rbee's
//!    other operations are accepted and fail at once; a body that is no operation gets `400`.
//! 2. `GET {sse_url}` → the job's events, in one of two dialects over the same log:
//!    - **rbee's text dialect** (no `Accept: text/event-stream`, as rbee's job client sends):
//!      `data:` frames only, each one human line ([`text::TextStream`]), the last exactly
//!      `[DONE]`, `[CANCELLED]` or `[ERROR] <message>`; then the stream closes.
//!    - **the rich dialect** (`Accept: text/event-stream` or a `Last-Event-ID`): an `id:` on every
//!      event (`Last-Event-ID: n` replays everything after `n`), narration as plain `data:` text
//!      frames, progress / heartbeat / results as named events with JSON ([`sse::encode`]), the
//!      terminal event, and last the same end marker as a plain `data:` frame.
//!
//!    Either way: `narration / progress / heartbeat …` then **exactly one** terminal event
//!    (`done`, `error` or `cancelled`); nothing is ever emitted after it.
//! 3. `DELETE /v1/jobs/{id}` cancels: `200 {"job_id":…,"status":"cancelled"}` once the job's task
//!    is dropped, `404` for an unknown id, `409` (with the final [`JobStatus`]) when it had ended.
//! 4. `GET /health` → `200 ok` (text), or JSON details ([`Health`]) when asked for `application/json`.
//!
//! ```
//! use rbee_protocol::{Event, sse};
//! let frame = sse::encode(7, &Event::narration("hello"));
//! assert_eq!(frame, "event:\nid:7\ndata:hello\n\n");
//! let mut dec = sse::Decoder::default();
//! let got = dec.feed(frame.as_bytes());
//! assert_eq!(got[0].id, Some(7));
//! assert_eq!(got[0].event, Event::narration("hello"));
//! ```
#![warn(missing_docs)]

mod error;
mod event;
mod health;
pub mod hf;
mod job;
mod model_ref;
mod operation;
pub mod select;
pub mod sse;
pub mod text;
pub mod validate;

pub use error::ErrorCode;
pub use event::{Event, SHUTTING_DOWN};
pub use health::Health;
pub use job::{ApiError, CachedFile, CachedRepo, JobCreated, JobId, JobInfo, JobStatus, ModelListing, RemoveReport};
pub use operation::{
    pick_gguf, InvalidOperation, ModelDelete, ModelDownload, ModelGet, ModelList, ModelRef, ModelVerify, Operation,
    Submitted, DEFAULT_HIVE_ID, DEFAULT_MODEL, DEFAULT_REVISION, GGUF_PREFERENCE, RBEE_OTHER_OPERATIONS,
};
pub use validate::escape;

/// Port of rbee's hive.
pub const DEFAULT_HIVE_PORT: u16 = 7835;
/// Default address the hive listens on (rbee's hive port, loopback).
pub const DEFAULT_HIVE_ADDR: &str = "127.0.0.1:7835";

/// Largest request body the hive accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body of `GET /health` in rbee's form.
pub const HEALTH_OK: &str = "ok";

/// rbee's end markers: the last line of every job stream.
pub mod markers {
    /// The job succeeded.
    pub const DONE: &str = "[DONE]";
    /// The job was cancelled.
    pub const CANCELLED: &str = "[CANCELLED]";
    /// The job failed; the message follows after a space.
    pub const ERROR_PREFIX: &str = "[ERROR]";

    /// Whether `line` (already stripped of `data:` and trimmed) ends a stream for rbee's client.
    #[must_use]
    pub fn is_marker(line: &str) -> bool {
        line == DONE || line == CANCELLED || line.starts_with(ERROR_PREFIX)
    }
}

/// The hive's HTTP routes (tide's `:param` syntax for the route table).
pub mod routes {
    /// `GET` → `ok` (or JSON details).
    pub const HEALTH: &str = "/health";
    /// `POST` an operation; `GET` the job table (ours).
    pub const JOBS: &str = "/v1/jobs";
    /// `GET` a job's status (ours); `DELETE` cancels it.
    pub const JOB: &str = "/v1/jobs/:id";
    /// `GET` a job's event stream.
    pub const JOB_STREAM: &str = "/v1/jobs/:id/stream";
    /// `GET` what the cache holds (ours).
    pub const MODELS: &str = "/v1/models";
    /// `DELETE` a cached repo (ours).
    pub const MODEL: &str = "/v1/models/:org/:name";
    /// `DELETE` a cached repo without an org (ours).
    pub const MODEL_NO_ORG: &str = "/v1/models/:name";
    /// `POST` stops the hive (ours).
    pub const SHUTDOWN: &str = "/v1/shutdown";
    /// The prefix of the read-only HuggingFace endpoint over the hive's cache: clients set
    /// `HF_ENDPOINT=http://host:7835/hf`.
    pub const MIRROR: &str = "/hf";
    /// Every route of the mirror: `GET`/`HEAD /hf/{repo}/resolve/{revision}/{file}`, `GET
    /// /hf/api/models/{repo}[/revision/{revision}]`.
    pub const MIRROR_ALL: &str = "/hf/*path";

    /// `GET` every job's events on one stream, rich dialect (ours: the hive's page).
    pub const EVENTS: &str = "/v1/events";
    /// `GET` the hive's facts: version, cache, hub, offline mode, free space (ours).
    pub const FACTS: &str = "/v1/hive";
    /// `GET` the hive's own page (ours).
    pub const PAGE: &str = "/";
    /// `GET` the page's script.
    pub const PAGE_SCRIPT: &str = "/page.js";
    /// `GET` the page's style sheet.
    pub const PAGE_STYLE: &str = "/page.css";

    /// `/v1/jobs/{id}` (an id as the hive hands it out needs no escaping).
    #[must_use]
    pub fn job(id: &str) -> String {
        JOB.replace(":id", id)
    }

    /// `/v1/jobs/{id}/stream`.
    #[must_use]
    pub fn job_stream(id: &str) -> String {
        JOB_STREAM.replace(":id", id)
    }
}
