//! `GET /v1/events`: every job's events on one stream, in the rich dialect, for the hive's page
//! (a browser opens at most 6 connections to one origin over HTTP/1.1, so one stream per job cannot
//! show 50 jobs).
//!
//! Each frame is named (`event: job | narration | progress | heartbeat | done | error |
//! cancelled | snapshot`), carries JSON, and has an `id:` from the hive-wide feed
//! ([`crate::jobs::feed`]). A client resumes after the last id it saw: with `Last-Event-ID` (what
//! `EventSource` sends when it reconnects), or, where a header cannot be sent (a new
//! `EventSource` after a page reload), `?last_event_id=N`; the header wins. A client without a
//! cursor, or whose cursor the feed no longer holds, first gets one `snapshot` of the job table
//! (each job with its last state) under the feed's current id, then what follows it: an event
//! already in the snapshot is not sent again, so nothing is ever shown twice.

use std::collections::HashMap;

use rbee_protocol::{ErrorCode, Event};
use serde_json::{json, Value};
use tide::sse::Sender;
use tide::{Endpoint, Request};

use super::{error, State};
use crate::jobs::feed::{Entry, Item, Since};
use crate::Hive;

/// The events route: 400 for a cursor that is no number, else the stream.
pub(super) fn endpoint() -> impl Endpoint<State> {
    let sse = std::sync::Arc::new(super::sse(stream));
    move |req: Request<State>| {
        let sse = sse.clone();
        async move {
            match cursor(&req) {
                Ok(_) => sse.call(req).await,
                Err(message) => error(ErrorCode::InvalidQuery, message),
            }
        }
    }
}

/// The client's cursor: `Last-Event-ID`, else `?last_event_id=`, else none.
fn cursor(req: &Request<State>) -> Result<Option<u64>, String> {
    let parse = |v: &str, what: &str| {
        v.trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("{what} must be an event id (a number), not `{}`", v.escape_debug()))
    };
    if let Some(v) = req.header("Last-Event-ID") {
        return parse(v.last().as_str(), "`Last-Event-ID`");
    }
    let mut found = None;
    for (key, value) in req.url().query_pairs() {
        match key.as_ref() {
            "last_event_id" if found.is_none() => found = parse(&value, "`last_event_id`")?,
            "last_event_id" => return Err("`last_event_id` is given more than once".into()),
            other => return Err(format!("unknown parameter `{}`, expected `last_event_id`", other.escape_debug())),
        }
    }
    Ok(found)
}

async fn stream(req: Request<State>, sender: Sender) -> tide::Result<()> {
    let hive = req.state().clone();
    let feed = hive.registry.feed().clone();
    let mut last = cursor(&req).ok().flatten();
    // Per job: the last of its events a snapshot already held (not sent again).
    let mut held: HashMap<String, u64> = HashMap::new();
    loop {
        let entries = match last {
            Some(after) => feed.next_after(after).await,
            None => Since::Gap,
        };
        match entries {
            Since::Gap => {
                let (head, jobs, upto) = snapshot(&hive);
                sender.send("snapshot", json!({ "jobs": jobs }).to_string(), Some(&head.to_string())).await?;
                (last, held) = (Some(head), upto);
            }
            Since::Entries(entries) => {
                for entry in entries {
                    last = Some(entry.seq);
                    if held.get(&entry.job_id).is_some_and(|&upto| entry.job_seq <= upto) {
                        continue;
                    }
                    let (name, data) = frame(&entry);
                    sender.send(name, data, Some(&entry.seq.to_string())).await?;
                }
            }
        }
    }
}

/// The SSE name and JSON data of a feed entry: the event's own JSON plus `job_id` and `job_seq`.
fn frame(entry: &Entry) -> (&'static str, String) {
    let (name, mut data) = match &entry.item {
        Item::Started { operation } => ("job", json!({ "kind": "job", "operation": operation })),
        Item::Event(event) => (event.name(), serde_json::to_value(event).unwrap_or(Value::Null)),
    };
    if let Value::Object(map) = &mut data {
        map.insert("job_id".into(), entry.job_id.clone().into());
        map.insert("job_seq".into(), entry.job_seq.into());
    }
    (name, data.to_string())
}

/// The feed's head, then every job with its last state (its last narration, heartbeat, progress of
/// each file, and terminal event), and how far into each job's log that state goes. Read in that
/// order, an event after the head is either in the snapshot (its job_seq within) or not yet.
fn snapshot(hive: &Hive) -> (u64, Vec<Value>, HashMap<String, u64>) {
    let head = hive.registry.feed().head();
    let mut upto = HashMap::new();
    let mut jobs = Vec::new();
    for info in hive.registry.list() {
        let Some(log) = hive.registry.log(&info.job_id) else { continue };
        let (events, _) = log.since(0);
        upto.insert(info.job_id.clone(), events.len() as u64);
        let mut job = serde_json::to_value(&info).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut job {
            map.insert("events".into(), latest(events.into_iter().map(|(_, e)| e)).into());
        }
        jobs.push(job);
    }
    (head, jobs, upto)
}

/// The last narration and heartbeat, the last progress of each file, and the terminal event, in
/// the order they happened.
fn latest(events: impl Iterator<Item = Event>) -> Vec<Value> {
    let mut kept: Vec<(String, Event)> = Vec::new();
    for event in events {
        let key = match &event {
            Event::Progress { file, .. } => format!("progress {file}"),
            other => other.name().to_owned(),
        };
        kept.retain(|(k, _)| *k != key);
        kept.push((key, event));
    }
    kept.into_iter().filter_map(|(_, e)| serde_json::to_value(e).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_keeps_the_last_of_each_kind_and_file() {
        let p =
            |file: &str, bytes| Event::Progress { file: file.into(), bytes, total: None, rate: 0.0, resumed_from: 0 };
        let got = latest(
            [Event::narration("a"), p("f", 1), p("g", 5), p("f", 2), Event::narration("b"), Event::done("ok")]
                .into_iter(),
        );
        let kinds: Vec<String> = got
            .iter()
            .map(|v| {
                format!(
                    "{}{}",
                    v["kind"].as_str().unwrap(),
                    v["bytes"].as_u64().map_or(String::new(), |b| b.to_string())
                )
            })
            .collect();
        assert_eq!(kinds, ["progress5", "progress2", "narration", "done"]);
    }

    #[test]
    fn frames_name_the_job() {
        let entry = Entry { seq: 7, job_id: "job-1".into(), job_seq: 3, item: Item::Event(Event::narration("hi")) };
        let (name, data) = frame(&entry);
        assert_eq!(name, "narration");
        let v: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            (v["job_id"].as_str(), v["job_seq"].as_u64(), v["message"].as_str()),
            (Some("job-1"), Some(3), Some("hi"))
        );
        let started =
            Entry { seq: 1, job_id: "job-1".into(), job_seq: 0, item: Item::Started { operation: "op".into() } };
        assert_eq!(frame(&started).0, "job");
    }
}
