//! Wire types shared by the `rbee` keeper and the `rbee-hive` daemon, plus the
//! Server-Sent-Events codec they speak. Pure data: no I/O, no runtime, no env.
//!
//! A job's life on the wire:
//!
//! 1. `POST /v1/jobs` with an [`Operation`] → [`JobCreated`] (`job_id`, `sse_url`) at once.
//! 2. `GET {sse_url}` → a stream of [`Event`]s, each framed by [`sse::encode`] with a
//!    sequence number as its SSE `id:`; `Last-Event-ID: n` replays everything after `n`.
//! 3. The stream is `narration / progress / heartbeat …` followed by **exactly one** terminal
//!    event (`done`, `error` or `cancelled`); nothing is ever emitted after it.
//! 4. `DELETE /v1/jobs/{id}` cancels: `200` once the job's task is dropped, `404` for an unknown
//!    id, `409` (with the final [`JobStatus`]) when the job had already ended.
//!
//! ```
//! use rbee_protocol::{Event, sse};
//! let frame = sse::encode(7, &Event::narration("hello"));
//! let mut dec = sse::Decoder::default();
//! let got = dec.feed(frame.as_bytes());
//! assert_eq!(got[0].id, Some(7));
//! assert_eq!(got[0].event, Event::narration("hello"));
//! ```
#![warn(missing_docs)]

mod event;
mod job;
mod operation;
pub mod sse;
pub mod validate;

pub use event::Event;
pub use job::{ApiError, CachedFile, CachedRepo, JobCreated, JobId, JobInfo, JobStatus, ModelListing, RemoveReport};
pub use operation::{ModelDownload, ModelList, ModelRemove, Operation, DEFAULT_HIVE_ID, DEFAULT_REVISION};
pub use validate::escape;

/// Default address the hive listens on (rbee's hive port).
pub const DEFAULT_HIVE_ADDR: &str = "127.0.0.1:7835";

/// Largest request body the hive accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
