//! Following a job's event stream to its terminal event.
//!
//! When the connection drops (or stalls) before the terminal event, the stream is reopened with
//! `Last-Event-ID: <last id seen>`; frames at or below that id are skipped, so the user sees no
//! gap and no duplicate. A stream that carried no `id:` (rbee's own hive, whose stream can be read
//! only once) is not reopened: its end without an end marker is an error. An error reply from the
//! hive (404, 401, …) ends the watch at once. A stream silent for [`SILENCE`] (three of the
//! hive's heartbeats) is checked with a status request: a hive that does not answer it within its
//! deadline is lost, and the watch ends saying so.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use futures_lite::{future, AsyncReadExt};
use rbee_protocol::sse::{Decoder, Frame};
use rbee_protocol::Event;

use crate::client::{deadline, status_of, HiveClient, NoSuchJob, SILENCE};
use crate::exit::StdoutClosed;
use crate::render::Renderer;

/// Reconnect attempts in a row that may bring nothing new.
const MAX_RETRIES: u32 = 5;
/// The stream said nothing for [`SILENCE`].
#[derive(Debug, thiserror::Error)]
#[error("no event for {}s", SILENCE.as_secs())]
struct Silent;

/// Remembers the highest event id shown, across connections.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    last: Option<u64>,
}

impl Dedup {
    /// Whether `frame` is new; frames without an id are always shown.
    pub(crate) fn admit(&mut self, frame: &Frame) -> bool {
        match (frame.id, self.last) {
            (Some(id), Some(last)) if id <= last => false,
            (Some(id), _) => {
                self.last = Some(id);
                true
            }
            (None, _) => true,
        }
    }

    /// What to send as `Last-Event-ID`.
    pub(crate) fn last(&self) -> Option<u64> {
        self.last
    }
}

/// Show each new frame; the terminal event, if one arrived.
pub(crate) fn absorb(frames: Vec<Frame>, dedup: &mut Dedup, mut show: impl FnMut(&Frame)) -> Option<Event> {
    for frame in frames {
        if !dedup.admit(&frame) {
            continue;
        }
        show(&frame);
        if frame.event.is_terminal() {
            return Some(frame.event);
        }
    }
    None
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50 << attempt.min(5))
}

/// Render job `job_id`'s events until its terminal event, which is returned.
pub(crate) async fn follow(client: &HiveClient, job_id: &str, sse_url: &str, r: &mut Renderer) -> Result<Event> {
    let mut dedup = Dedup::default();
    let mut failures = 0;
    loop {
        let seen = dedup.last();
        let err = match read_once(client, sse_url, &mut dedup, r).await {
            Ok(Some(end)) => return Ok(end),
            Ok(None) => anyhow!("the stream ended before the job did"),
            Err(e) if status_of(&e).is_some() || e.is::<StdoutClosed>() => return Err(e),
            Err(e) if e.is::<Silent>() && dedup.last().is_some() => {
                alive(client, job_id).await?;
                continue; // the hive answers and the job runs: a quiet job, not a lost hive
            }
            Err(e) => e,
        };
        if dedup.last().is_none() {
            return Err(err.context(format!("lost the event stream of job {job_id} (it cannot be resumed)")));
        }
        failures = if dedup.last() == seen { failures + 1 } else { 1 };
        if failures > MAX_RETRIES {
            return Err(err.context(format!("lost the event stream of job {job_id}")));
        }
        smol::Timer::after(backoff(failures)).await;
        match client.job(job_id).await {
            Ok(info) if info.status.is_final() && failures > 1 => {
                let status = info.status.as_str();
                return Err(err.context(format!("job {job_id} is {status} but its stream never said so")));
            }
            Err(e) if e.is::<NoSuchJob>() || status_of(&e).is_some() => return Err(e),
            Ok(_) | Err(_) => {}
        }
    }
}

/// After a silent stretch: `Ok` when the hive still answers about a running job (reopen the
/// stream), else the lost hive.
async fn alive(client: &HiveClient, job_id: &str) -> Result<()> {
    match client.job(job_id).await {
        Ok(info) if !info.status.is_final() => Ok(()),
        Ok(info) => {
            let status = info.status.as_str();
            Err(anyhow!("job {job_id} is {status} but its stream went silent without saying so"))
        }
        Err(e) => {
            Err(e.context(format!("lost the hive: job {job_id}'s stream sent nothing for {}s", SILENCE.as_secs())))
        }
    }
}

/// One connection: `Some(terminal event)`, or `None` when the stream ended early.
async fn read_once(client: &HiveClient, sse_url: &str, dedup: &mut Dedup, r: &mut Renderer) -> Result<Option<Event>> {
    let mut body = client.stream(sse_url, dedup.last()).await?;
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = deadline(SILENCE, body.read(&mut buf)).await.ok_or(Silent)?;
        let n = read.context("reading the job's event stream")?;
        if n == 0 {
            return Ok(None);
        }
        let end = absorb(decoder.feed(&buf[..n]), dedup, |f| r.event(f));
        if r.stdout_closed() {
            return Err(StdoutClosed.into());
        }
        if end.is_some() {
            return Ok(end);
        }
        // Let a racing Ctrl+C in even when the stream never makes us wait.
        future::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_protocol::sse::encode;

    fn log() -> Vec<Event> {
        let mut events: Vec<_> = (0..6).map(|i| Event::narration(format!("line {i}"))).collect();
        events.push(Event::Done { message: "ok".into(), path: Some("/p".into()), result: None, lines: vec![] });
        events
    }

    fn wire(events: &[Event], from: u64) -> String {
        events.iter().zip(0..).skip_while(|(_, i)| *i < from).map(|(e, i)| encode(i, e)).collect()
    }

    #[test]
    fn reconnect_shows_every_event_once() {
        let events = log();
        let first = wire(&events, 0);
        let cut = first.find("line 4").unwrap(); // drop mid-frame of event 4
        let (mut dedup, mut shown) = (Dedup::default(), Vec::new());
        let end =
            absorb(Decoder::default().feed(&first.as_bytes()[..cut]), &mut dedup, |f| shown.push(f.event.clone()));
        assert_eq!((end, dedup.last()), (None, Some(3)));
        // A hive that replays too much (from 2) must not cause duplicates.
        let end =
            absorb(Decoder::default().feed(wire(&events, 2).as_bytes()), &mut dedup, |f| shown.push(f.event.clone()));
        assert_eq!(end, events.last().cloned());
        assert_eq!(shown, events);
    }

    #[test]
    fn nothing_after_the_terminal_event() {
        let mut events = log();
        events.push(Event::narration("late"));
        let mut shown = Vec::new();
        let end = absorb(Decoder::default().feed(wire(&events, 0).as_bytes()), &mut Dedup::default(), |f| {
            shown.push(f.event.clone());
        });
        assert!(end.unwrap().is_terminal());
        assert_eq!(shown.len(), 7);
    }

    #[test]
    fn frames_without_ids_pass() {
        let mut dedup = Dedup::default();
        let frame = Frame { id: None, event: Event::narration("x") };
        assert!(dedup.admit(&frame) && dedup.admit(&frame));
        assert_eq!(dedup.last(), None);
        assert!(backoff(1) < backoff(2) && backoff(9) == backoff(5));
    }
}
