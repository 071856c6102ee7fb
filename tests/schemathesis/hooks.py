"""Schemathesis hooks for the rbee hive, loaded by run.sh through SCHEMATHESIS_HOOKS.

Requests: schemathesis always sends `Accept: */*`, and OpenAPI cannot declare an `Accept`
parameter, so `before_call` alternates it where it selects what the hive answers:

* `GET /v1/jobs/{id}/stream`: every other call asks for `text/event-stream` (the rich dialect);
  the rest get rbee's text dialect unless they send a `Last-Event-ID`;
* `GET /health`: every other call asks for `application/json` (details instead of `ok`).

Cases: JSON Schema counts a string's length in characters, the hive its names' limits in UTF-8
bytes, as the spec says in prose (a revision at most 255 bytes; a file at most 1024, each of its
segments at most 255). `filter_case` drops the positive cases that only those byte limits make
invalid, so `positive_data_acceptance` judges what the spec promises; negative cases are kept.

Schema: `before_load_schema` drops the entries of a discriminator `mapping` that map several
values to one schema (`Operation` maps rbee's 23 other operations to `RbeeOtherOperation`).
schemathesis 4.32.5 pins each `oneOf` branch to one mapping value (`_pin_discriminator_property`
keeps the last), so it would take `{"operation":"model_unload"}` for invalid data and fail the
hive for accepting it; without those entries the branch keeps its own `enum` of tags.

Failures: `DELETE /v1/jobs/{id}` cancels a job, it does not delete it: the spec says the job stays
listed, with status `cancelled`, and its stream replays. `filter_failure` drops schemathesis'
use-after-free finding (ST301) exactly when the later read shows that cancellation; any other
answer after a cancel still fails.

Responses: a `text/plain` deserializer lets the spec's `const: ok` be checked, and the spec's
`EventFrame` schema validates every frame of a stream on its own. The checks below add what a
per-frame schema cannot say:

* `health_negotiation`: JSON exactly when it was asked for, else `text/plain` `ok`;
* `event_stream_dialect`: the stream is in the dialect the request selected, and well formed:
  - rbee's text dialect: only `data: <line>` frames (no `event:`/`id:` lines), no empty line, and
    exactly one end marker (`[DONE]`, `[CANCELLED]`, `[ERROR] <message>`), last;
  - the rich dialect: `event:<kind>\\nid:<n>\\ndata:<json>` frames for events, `event:\\nid:<n>
    \\ndata:<text>` for narration, ids consecutive right after the `Last-Event-ID` sent (from 1
    without one, or when it is not a number); exactly one terminal event (`done`, `error`,
    `cancelled`), then exactly one plain frame without `id` carrying its end marker, then nothing;
  - a stream the hive closed by itself (not cut short by the client) ends with the end marker,
    or is empty (the rich dialect, replaying after the last event);
* `event_stream_dialects_agree`: once a job's stream closed, the whole log is fetched again in
  both dialects; the checked response must be that log (after its `Last-Event-ID`), and the text
  dialect must show exactly the lines the rich one renders to (progress aside: the text dialect
  throttles it in time).
"""

import atexit
import collections
import itertools
import json
import os
import re
import threading

import requests
import schemathesis
from schemathesis.generation import GenerationMode
from schemathesis.openapi.checks import UseAfterFree

STREAM = "/v1/jobs/{id}/stream"
HEALTH = "/health"
SSE = "text/event-stream"
JSON = "application/json"
NAMED = ("progress", "heartbeat", "done", "error", "cancelled")
TERMINAL = ("done", "error", "cancelled")
U64_MAX = 2**64 - 1
# What Rust's `str::trim` removes, within the Latin-1 range a header value can carry.
RUST_HEADER_WHITESPACE = " \t\n\x0b\x0c\r\x85\xa0"
# Rust's `char::is_whitespace` (Unicode White_Space), what `str::trim` removes from a line.
RUST_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
RUST_U64 = re.compile(r"\+?[0-9]+")
BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
# `text::is_unsafe` besides controls: bidi, zero-width, U+2028/9.
UNSAFE = BIDI | {0x200B, 0x200C, 0x200D, 0x2028, 0x2029, 0xFEFF}
SGR = re.compile(r"\x1b\[[0-9;:]*m")
MARKERS = ("[DONE]", "[CANCELLED]", "[ERROR]")
RICH_EVENT = re.compile(r"event:([a-z]*)\nid:([0-9]+)\ndata:(.*)", re.DOTALL)
RICH_MARKER = re.compile(r"event:\ndata:(.*)", re.DOTALL)
TEXT_FRAME = re.compile(r"data: (.*)", re.DOTALL)
REFETCH_TIMEOUT = 15

# What the checks below saw (200s they judged), written as JSON to $RBEE_ST_SEEN when schemathesis
# exits, so run.sh can tell that they were not vacuous (each dialect streamed, both compared, …).
_seen = collections.Counter()
_seen_lock = threading.Lock()


def seen(what):
    with _seen_lock:
        _seen[what] += 1


@atexit.register
def _write_seen():
    if os.environ.get("RBEE_ST_SEEN"):
        with open(os.environ["RBEE_ST_SEEN"], "w") as f:
            json.dump(_seen, f, sort_keys=True)


# --- requests ---------------------------------------------------------------------------------

_calls = {path: itertools.count() for path in (STREAM, HEALTH)}
_calls_lock = threading.Lock()


@schemathesis.hook
def before_call(context, case, kwargs):
    """Alternates `Accept` on the two routes where it chooses the answer (see the module docs)."""
    path = case.operation.path
    if path not in _calls or case.method.upper() != "GET":
        return
    with _calls_lock:
        n = next(_calls[path])
    if n % 2:
        case.headers = {**(case.headers or {}), "Accept": SSE if path == STREAM else JSON}


def over_byte_limits(case):
    """Whether a name in the case breaks a limit the hive counts in UTF-8 bytes (see the module docs)."""
    names = []
    body = case.body if isinstance(case.body, dict) else {}
    for key in ("model", "id"):
        if isinstance(body.get(key), str) and ":" in body[key]:
            names.append(("file", body[key].split(":", 1)[1]))
    if isinstance(body.get("revision"), str):
        names.append(("revision", body["revision"]))
    query = case.query if isinstance(case.query, dict) else {}
    if isinstance(query.get("file"), str):
        names.append(("file", query["file"]))
    size = lambda s: len(s.encode("utf-8", "surrogatepass"))  # noqa: E731
    for kind, value in names:
        if kind == "revision" and size(value) > 255:
            return True
        if kind == "file" and (size(value) > 1024 or any(size(part) > 255 for part in value.split("/"))):
            return True
    return False


@schemathesis.hook
def filter_case(context, case):
    """Drops positive cases that break only a byte limit (see the module docs)."""
    meta = case.meta
    positive = meta is None or meta.generation.mode == GenerationMode.POSITIVE
    return not (positive and over_byte_limits(case))


@schemathesis.deserializer("text/plain")
def deserialize_text(ctx, response):
    """`text/plain` bodies as text, so the spec's schema for them is checked too."""
    return response.content.decode(response.encoding or "utf-8")


@schemathesis.hook
def before_load_schema(context, raw_schema):
    """Keeps only one-to-one discriminator mappings (see the module docs)."""
    stack = [raw_schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            mapping = node.get("discriminator", {}).get("mapping") if isinstance(node.get("discriminator"), dict) else None
            if isinstance(mapping, dict):
                targets = collections.Counter(mapping.values())
                for value in [v for v, target in mapping.items() if targets[target] > 1]:
                    del mapping[value]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drops ST301 when the job read after its cancel shows the cancellation (see the module docs)."""
    if not isinstance(failure, UseAfterFree) or response.status_code != 200:
        return True
    path = case.operation.path
    if path == "/v1/jobs/{id}":
        try:
            return json.loads(response.content).get("status") != "cancelled"
        except ValueError:
            return True
    if path == STREAM:
        text, headers = response.content.decode("utf-8", "replace"), response.request.headers
        if wants_rich(headers):
            if text == "" and headers.get("Last-Event-ID") is not None:
                return False  # replaying after the end: nothing to show
            return not any(frame.startswith("event:cancelled\n") for frame in text.split("\n\n"))
        return not text.endswith("data: [CANCELLED]\n\n")
    return True


# --- rbee_protocol::text, as the hive renders lines ------------------------------------------


def one_line(s):
    """`text::sanitize`: SGR stripped; control, bidi and zero-width characters as `\\u{…}`."""
    s = SGR.sub("", s)
    return "".join(f"\\u{{{ord(c):x}}}" if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or ord(c) in UNSAFE else c for c in s)


def defuse(line):
    """`text::defuse_markers`: no end-marker text inside a line."""
    for marker in MARKERS:
        line = line.replace(marker, "\\u{5b}" + marker[1:])
    return line


def is_marker(line):
    return line in ("[DONE]", "[CANCELLED]") or line.startswith("[ERROR]")


def safe_line(s):
    """`text::safe_line`: trimmed, one line, and holding no end-marker text."""
    return defuse(one_line(s.strip(RUST_WHITESPACE)))


def end_line(kind, event):
    """`Event::end_line`: the marker that follows a terminal event."""
    if kind == "done":
        return "[DONE]"
    if kind == "cancelled":
        return "[CANCELLED]"
    return f"[ERROR] {defuse(one_line(event['message']))}"


# --- reading the two dialects -----------------------------------------------------------------


def raw_frames(text):
    """The stream's frames as their raw text (between blank lines), and whether the text ends
    where a frame ends. The hive writes LF only."""
    assert "\r" not in text, "the hive writes LF line ends only, found a CR"
    *frames, rest = text.split("\n\n")
    return frames, rest == ""


def replay_after(headers):
    """The sequence number the hive replays after, as it parses `Last-Event-ID` (`u64`, else 0)."""
    value = headers.get("Last-Event-ID")
    if value is None:
        return 0
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip(RUST_HEADER_WHITESPACE)
    if not RUST_U64.fullmatch(value):
        return 0
    number = int(value)
    return number if number <= U64_MAX else 0


def wants_rich(headers):
    """Whether the hive answers in the rich dialect: a `Last-Event-ID` (any value) or an
    `Accept` naming `text/event-stream`."""
    return headers.get("Last-Event-ID") is not None or SSE in str(headers.get("Accept", ""))


def read_text(text, cut_short):
    """rbee's text dialect: its lines, checked (see the module docs)."""
    frames, whole = raw_frames(text)
    assert whole or cut_short, f"the text stream ends inside a frame: {text[-200:]!r}"
    lines = []
    for index, frame in enumerate(frames):
        match = TEXT_FRAME.fullmatch(frame)
        assert match and "\n" not in match[1], (
            f"text dialect frame {index} is not one `data: <line>` (rbee's client prints every other line raw): {frame!r}"
        )
        assert match[1], f"text dialect frame {index} is an empty line"
        lines.append(match[1])
    for index, line in enumerate(lines[:-1]):
        assert not is_marker(line), f"text dialect line {index} is the end marker {line!r} but {len(lines) - index - 1} lines follow"
    if not cut_short:
        assert lines and is_marker(lines[-1]), (
            f"the hive closed the text stream without an end marker; last line: {lines[-1] if lines else None!r}"
        )
    return lines


def read_rich(text, cut_short, after):
    """The rich dialect: its frames as `(kind, id, event-or-text)`, the end marker as
    `("marker", None, text)`, checked (see the module docs)."""
    frames, whole = raw_frames(text)
    assert whole or cut_short, f"the event stream ends inside a frame: {text[-200:]!r}"
    out, expected, terminal = [], after + 1, None
    for index, frame in enumerate(frames):
        assert terminal is None or out[-1][0] != "marker", f"frame {index} follows the end marker: {frame!r}"
        if terminal is not None:
            match = RICH_MARKER.fullmatch(frame)
            assert match and "\n" not in match[1], (
                f"frame {index}: after the terminal `{terminal[0]}` event comes the end marker as "
                f"`event:` + `data:<marker>` without an id, not {frame!r}"
            )
            assert match[1] == end_line(*terminal), (
                f"frame {index}: end marker {match[1]!r} after a `{terminal[0]}` event, expected {end_line(*terminal)!r}"
            )
            out.append(("marker", None, match[1]))
            continue
        match = RICH_EVENT.fullmatch(frame)
        assert match and "\n" not in match[3], f"frame {index} is not `event:<kind>\\nid:<n>\\ndata:<data>`: {frame!r}"
        name, seq, data = match[1], int(match[2]), match[3]
        assert seq == expected, f"frame {index}: id {seq}, expected {expected} (consecutive after Last-Event-ID {after})"
        expected += 1
        if name == "":
            assert not is_marker(data), f"frame {index}: a narration reads as the end marker {data!r}"
            out.append(("narration", seq, data))
            continue
        assert name in NAMED, f"frame {index}: unknown event name {name!r}"
        event = json.loads(data)
        assert event.get("kind") == name, f"frame {index}: `event:{name}` but `kind` is {event.get('kind')!r}"
        out.append((name, seq, event))
        if name in TERMINAL:
            terminal = (name, event)
    if not cut_short and out:
        assert out[-1][0] == "marker", f"the hive closed the stream after a `{out[-1][0]}` frame, not the end marker"
    return out


def expected_text(rich):
    """The lines rbee's text dialect shows for a whole rich log (`text::TextStream`), progress
    as `None`: the text dialect shows some of those lines (first, last, then every 2 s)."""
    lines = []
    for kind, _, payload in rich:
        if kind == "narration":
            lines.append(payload)
        elif kind == "progress":
            lines.append(None)
        elif kind in ("heartbeat", "cancelled"):
            lines.append(safe_line(payload["message"]))
        elif kind == "done":
            lines.extend(safe_line(line) for line in [payload["message"], *payload.get("lines", [])])
        elif kind == "marker":
            lines.append(payload)
    return [line for line in lines if line != ""]


def text_matches(shown, expected):
    """Whether `shown` is `expected` with each `None` (a progress event) shown as a progress
    line (`⏳ <file> …`) or not at all."""
    i = 0
    for want in expected:
        if want is None:
            if i < len(shown) and shown[i].startswith("⏳ ") and shown[i] not in expected:
                i += 1
            continue
        if i >= len(shown) or shown[i] != want:
            return False
        i += 1
    return i == len(shown)


# --- checks -----------------------------------------------------------------------------------


@schemathesis.check
def health_negotiation(ctx, response, case):
    """`GET /health`: JSON details exactly when `Accept` names `application/json`, else `ok`."""
    if case.operation.path != HEALTH or response.request.method != "GET" or response.status_code != 200:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if JSON in str(response.request.headers.get("Accept", "")):
        assert content_type.startswith(JSON), f"`Accept: application/json` answered with {content_type!r}"
        seen("health json")
    else:
        seen("health text")
        assert content_type.startswith("text/plain"), f"`Accept: {response.request.headers.get('Accept')}` answered with {content_type!r}"
        assert response.content == b"ok", f"rbee's health body is `ok`, not {response.content[:100]!r}"
    return None


def _utf8(content, what):
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError(f"{what} is not UTF-8: {e}") from None


def _stream(response):
    """The stream response's text, after the checks shared by both dialects."""
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == SSE, f"a stream answered with {content_type!r}"
    return _utf8(response.content, "the stream")


@schemathesis.check
def event_stream_dialect(ctx, response, case):
    """The stream is in the dialect the request selected, and well formed (see the module docs)."""
    if case.operation.path != STREAM or response.request.method != "GET" or response.status_code != 200:
        return None
    text = _stream(response)
    headers = response.request.headers
    if wants_rich(headers):
        frames = read_rich(text, response.stream_cut_short, replay_after(headers))
        seen("stream rich")
        if headers.get("Last-Event-ID") is not None:
            seen("stream rich after Last-Event-ID")
    else:
        frames = read_text(text, response.stream_cut_short)
        seen("stream text")
    if frames and not response.stream_cut_short:
        seen("stream ended")
    return None


def _refetch(url, headers):
    try:
        r = requests.get(url, headers=headers, timeout=REFETCH_TIMEOUT)
    except requests.RequestException as e:
        raise AssertionError(f"fetching {url} again ({headers}) got no answer: {e}") from None
    if r.status_code == 404:
        return None  # expired in between
    assert r.status_code == 200, f"fetching {url} again ({headers}): {r.status_code}"
    return _utf8(r.content, f"the stream of {url} ({headers})")


@schemathesis.check
def event_stream_dialects_agree(ctx, response, case):
    """An ended job's stream, in either dialect, is its one log (see the module docs)."""
    if case.operation.path != STREAM or response.request.method != "GET" or response.status_code != 200:
        return None
    if response.stream_cut_short:
        return None  # the job may still run: there is no whole log to compare with yet
    text = _stream(response)
    url, headers = response.request.url, response.request.headers
    auth = {"Authorization": headers["Authorization"]} if "Authorization" in headers else {}
    rich_text = _refetch(url, {**auth, "Accept": SSE})
    plain_text = _refetch(url, {**auth, "Accept": "*/*"})
    if rich_text is None or plain_text is None:
        return None
    rich = read_rich(rich_text, False, 0)
    plain = read_text(plain_text, False)
    assert rich, "the rich stream of an ended job is empty"
    if wants_rich(headers):
        after = replay_after(headers)
        got = read_rich(text, False, after)
        want = [frame for frame in rich if frame[1] is None or frame[1] > after]
        if after >= rich[-2][1]:
            want = []  # at or past the terminal event: nothing to replay, not even the marker
        assert got == want, f"the stream after Last-Event-ID {after} is not the job's log after {after}:\n{got}\nvs\n{want}"
    else:
        assert read_text(text, False) == plain, "two text-dialect streams of one ended job differ"
    expected = expected_text(rich)
    assert text_matches(plain, expected), (
        "rbee's text dialect does not show the lines of the job's log:\n"
        f"  text dialect: {plain}\n  rendered from the rich dialect: {expected}"
    )
    seen("stream dialects compared")
    return None
