//! Property tests of the protocol crate: the SSE codec, operation JSON and name validation.
//!
//! Cases per property: proptest's default (256), or `PROPTEST_CASES` (`just soak` runs many
//! more). A failing case is saved under `proptest-regressions/` and replayed first from then on:
//! commit that file with the fix.

use std::path::{Component, Path};

use proptest::prelude::*;
use rbee_protocol::sse::{encode, Decoder, Frame};
use rbee_protocol::{text, validate, Event, ModelDelete, ModelDownload, ModelGet, ModelList, Operation, Submitted};
use serde_json::Value;

/// Any text, control characters, newlines and non-ASCII included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z \\n\\r:\\\\\"\\u{0}-\\u{1f}é✓]{0,24}"]
}

/// A JSON value without floats (which serde_json may not round-trip to the last bit).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<serde_json::Map<_, _>>())),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        text().prop_map(|message| Event::Narration { message }),
        (text(), any::<u64>(), any::<Option<u64>>(), any::<u32>(), any::<u64>()).prop_map(
            |(file, bytes, total, rate, resumed_from)| Event::Progress {
                file,
                bytes,
                total,
                rate: f64::from(rate) / 4.0,
                resumed_from
            }
        ),
        (text(), any::<u64>()).prop_map(|(message, elapsed_secs)| Event::Heartbeat { message, elapsed_secs }),
        // `result: Some(Null)` is sent as `"result":null`, which reads back as `None` (see
        // `a_null_result_reads_back_as_none`): generate only results that are not null.
        (text(), any::<Option<String>>(), prop::option::of(json_value().prop_filter("not null", |v| !v.is_null())))
            .prop_map(|(message, path, result)| Event::Done { message, path, result, lines: vec![] }),
        text().prop_map(|message| Event::Error { message }),
        text().prop_map(|message| Event::Cancelled { message }),
    ]
}

fn frames() -> impl Strategy<Value = Vec<(u64, Event)>> {
    prop::collection::vec((any::<u64>(), event()), 0..8)
}

fn encoded(frames: &[(u64, Event)]) -> String {
    frames.iter().map(|(id, e)| encode(*id, e)).collect()
}

/// `bytes` fed in chunks cut at `cuts` (positions taken modulo the length).
fn feed_split(bytes: &[u8], cuts: &[usize]) -> Vec<Result<Frame, String>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| if bytes.is_empty() { 0 } else { c % bytes.len() }).collect();
    points.sort_unstable();
    let mut dec = Decoder::default();
    let mut out = Vec::new();
    let mut from = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        out.extend(dec.feed_checked(&bytes[from..p]).into_iter().map(|r| r.map_err(|e| e.to_string())));
        from = p;
    }
    out
}

fn one_shot(bytes: &[u8]) -> Vec<Result<Frame, String>> {
    Decoder::default().feed_checked(bytes).into_iter().map(|r| r.map_err(|e| e.to_string())).collect()
}

proptest! {
    #[test]
    fn decoder_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let _ = feed_split(&bytes, &cuts);
    }

    #[test]
    fn decoder_never_panics_on_sse_like_bytes(text in "(data|id|event|:|retry)?[:]?[ ]?[\\{\\}\"a-z0-9:,\\[\\] ]{0,40}[\\r\\n]{0,3}", reps in 1usize..8) {
        let bytes = text.repeat(reps).into_bytes();
        prop_assert_eq!(one_shot(&bytes), feed_split(&bytes, &[1, 7, 13]));
    }

    #[test]
    fn incremental_equals_one_shot_for_any_split(bytes in prop::collection::vec(any::<u8>(), 0..512), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        prop_assert_eq!(one_shot(&bytes), feed_split(&bytes, &cuts));
    }

    #[test]
    fn encode_then_decode_round_trips(frames in frames(), cuts in prop::collection::vec(any::<usize>(), 0..8), crlf in any::<bool>()) {
        let mut text = encoded(&frames);
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        prop_assert!(frames.iter().all(|(_, e)| !e.to_json().contains('\n')), "data must stay on one line");
        // Narration travels as one escaped text line, never one that reads as an end marker.
        let sent = |e: &Event| match e {
            Event::Narration { message } => Event::narration(text::safe_line(message)),
            other => other.clone(),
        };
        let want: Vec<Result<Frame, String>> =
            frames.iter().map(|(id, e)| Ok(Frame { id: Some(*id), event: sent(e) })).collect();
        prop_assert_eq!(&feed_split(text.as_bytes(), &cuts), &want);
        let mut dec = Decoder::default();
        let _ = dec.feed(text.as_bytes());
        prop_assert_eq!(dec.last_id, frames.last().map(|(id, _)| *id));
    }

    #[test]
    fn event_json_round_trips_and_names_its_kind(e in event()) {
        let json = e.to_json();
        let back: Event = serde_json::from_str(&json).expect("decodes");
        prop_assert_eq!(&back, &e);
        let kind = serde_json::from_str::<Value>(&json).expect("json")["kind"].clone();
        prop_assert_eq!(kind, Value::from(e.name()));
        prop_assert_eq!(e.is_terminal(), e.end_line().is_some());
    }
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        (
            (text(), text(), prop::option::of(text()), any::<bool>()),
            (prop::collection::vec(text(), 0..3), any::<bool>(), prop::option::of(1..=64u32))
        )
            .prop_map(|((hive_id, model, revision, all), (include, dry_run, connections))| {
                let mut d = ModelDownload::new(&rbee_protocol::ModelRef::parse("o/m").expect("valid"));
                (d.hive_id, d.model, d.revision, d.all, d.include, d.dry_run, d.connections) =
                    (hive_id, model, revision, all, include, dry_run, connections);
                Operation::ModelDownload(d)
            }),
        text().prop_map(|hive_id| Operation::ModelList(ModelList { hive_id })),
        (text(), text()).prop_map(|(hive_id, id)| Operation::ModelGet(ModelGet { hive_id, id })),
        (text(), text(), any::<bool>(), any::<bool>()).prop_map(|(hive_id, id, partial, force)| {
            Operation::ModelDelete(ModelDelete { hive_id, id, partial, force })
        }),
        text().prop_map(|alias| Operation::HiveCheck { alias }),
    ]
}

const FIELDS: &[&str] = &[
    "operation",
    "hive_id",
    "model",
    "id",
    "revision",
    "all",
    "connections",
    "include",
    "exclude",
    "dry_run",
    "max_rate",
    "partial",
    "force",
    "alias",
];
const NAMES: &[&str] = &["model_download", "model_list", "model_get", "model_delete", "model_verify", "hive_check"];

fn parse(json: &Value) -> Result<Submitted, String> {
    Operation::parse(json.to_string().as_bytes()).map_err(|e| e.to_string())
}

proptest! {
    #[test]
    fn operation_json_round_trips(op in operation()) {
        let json = serde_json::to_value(&op).expect("serializes");
        prop_assert_eq!(json["operation"].as_str(), Some(op.name()));
        prop_assert_eq!(parse(&json), Ok(Submitted::Supported(op)));
    }

    #[test]
    fn operation_parsing_never_panics(json in any::<String>(), v in json_value()) {
        let _ = Operation::parse(json.as_bytes());
        let _ = parse(&v);
        for name in NAMES {
            let mut body = serde_json::json!({ "operation": name });
            if let (Some(o), Some(fields)) = (body.as_object_mut(), v.as_object()) {
                o.extend(fields.clone());
            }
            let _ = parse(&body);
        }
    }

    #[test]
    fn unknown_fields_are_ignored_as_rbee_does(op in operation(), key in "[a-z_]{1,12}", v in json_value()) {
        prop_assume!(!FIELDS.contains(&key.as_str()));
        let mut json = serde_json::to_value(&op).expect("serializes");
        json.as_object_mut().expect("object").insert(key, v);
        prop_assert_eq!(parse(&json), Ok(Submitted::Supported(op)));
    }

    #[test]
    fn unknown_operations_are_refused_by_name(name in "[a-z_]{1,16}", v in json_value()) {
        prop_assume!(!NAMES.contains(&name.as_str()) && !rbee_protocol::RBEE_OTHER_OPERATIONS.contains(&name.as_str()));
        let err = parse(&serde_json::json!({ "operation": name.clone(), "x": v })).expect_err("refused");
        prop_assert!(err.contains(&name), "{} does not name `{}`", err, name);
    }
}

/// Names built from the pieces traversal attacks use, plus ordinary characters.
fn evil_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(".."),
        Just("."),
        Just("/"),
        Just("\\"),
        Just("%2e"),
        Just("%2F"),
        Just("%00"),
        Just("\0"),
        Just("\n"),
        Just("a"),
        Just("B"),
        Just("0"),
        Just("-"),
        Just("_"),
        Just("~"),
        Just(" "),
        Just("é"),
        Just("C:"),
    ];
    prop_oneof![prop::collection::vec(piece, 0..12).prop_map(|p| p.concat()), any::<String>(), "[a-z./]{0,300}"]
}

/// What an accepted name must never do once joined under the cache directory.
fn stays_inside(name: &str) -> Result<(), String> {
    let path = Path::new("/cache/models--x/snapshots/c").join(name);
    let escapes = path.components().skip(5).any(|c| !matches!(c, Component::Normal(_)));
    let bad = escapes
        || name.is_empty()
        || name.len() > validate::MAX_NAME_LEN
        || name.starts_with('/')
        || name.contains(['\\', '%', '\0'])
        || name.chars().any(char::is_control)
        || name.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        Err(format!("accepted {name:?}"))
    } else {
        Ok(())
    }
}

proptest! {
    #[test]
    fn accepted_names_never_escape(name in evil_name()) {
        if validate::file_name(&name).is_ok() {
            stays_inside(&name).map_err(TestCaseError::fail)?;
            prop_assert!(name.split('/').all(|s| s.len() <= 255));
        }
        if validate::revision(&name).is_ok() {
            stays_inside(&name).map_err(TestCaseError::fail)?;
            prop_assert!(name.len() <= 255);
        }
        if validate::repo_id(&name).is_ok() {
            stays_inside(&name).map_err(TestCaseError::fail)?;
            let parts: Vec<&str> = name.split('/').collect();
            prop_assert!(parts.len() <= 2);
            // `models--{org}--{name}` must map back to exactly one repo id.
            prop_assert!(parts.iter().all(|p| !p.contains("--") && !p.is_empty()));
            prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)));
        }
    }

    #[test]
    fn refusals_name_the_field_and_never_panic(name in evil_name()) {
        for (field, result) in [
            ("file", validate::file_name(&name)),
            ("revision", validate::revision(&name)),
            ("model", validate::repo_id(&name)),
        ] {
            if let Err(e) = result {
                prop_assert_eq!(e.field, field);
                let shown = e.to_string();
                prop_assert!(shown.starts_with(&format!("invalid {field} `")), "{}", shown);
                prop_assert!(!shown.contains('\0') && !shown.contains('\n'), "control characters escaped: {:?}", shown);
            }
        }
    }

    #[test]
    fn ordinary_names_are_accepted(org in "[A-Za-z0-9][A-Za-z0-9_]{0,20}", name in "[A-Za-z0-9]([A-Za-z0-9_]|\\.[A-Za-z0-9]){0,10}", dir in "[a-z0-9_]{1,8}") {
        let repo = format!("{org}/{name}");
        prop_assert!(validate::repo_id(&repo).is_ok(), "{}", repo);
        let file = format!("{dir}/{name}.gguf");
        prop_assert!(validate::file_name(&file).is_ok(), "{}", file);
        prop_assert!(validate::revision(&dir).is_ok());
    }
}

/// Found by `event_json_round_trips_and_names_its_kind`: serde reads `"result":null` as no
/// result, so `Some(Value::Null)` does not survive the wire. Both mean "no structured result".
#[test]
fn a_null_result_reads_back_as_none() {
    let e = Event::Done { message: String::new(), path: None, result: Some(Value::Null), lines: vec![] };
    let back: Event = serde_json::from_str(&e.to_json()).expect("decodes");
    assert_eq!(back, Event::done(""));
}
