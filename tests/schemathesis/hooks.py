"""Schemathesis hooks for the rbee hive, loaded by run.sh through SCHEMATHESIS_HOOKS.

The spec's `EventFrame` schema already validates every frame of `GET /v1/jobs/{id}/stream` on its
own (including its `data` against `Event`). This check adds what a per-frame schema cannot say:

* `event:` equals the JSON `kind`;
* ids are consecutive, starting right after the `Last-Event-ID` the request sent (from 1 without
  one, or when it is not a number);
* exactly one terminal event (`done`, `error`, `cancelled`), last, right after the narration with
  its end marker (`[DONE]`, `[ERROR]`, `[CANCELLED]`) when that narration is in the replay;
* a stream the hive closed by itself (not cut short by the client) that has events ends with the
  terminal one.
"""

import json
import re

import schemathesis

STREAM = "/v1/jobs/{id}/stream"
END_MARKERS = {"done": "[DONE]", "error": "[ERROR]", "cancelled": "[CANCELLED]"}
U64_MAX = 2**64 - 1
LINE = re.compile(r"\r\n|\r|\n")
# What Rust's `str::trim` removes, within the Latin-1 range a header value can carry.
RUST_WHITESPACE = " \t\n\x0b\x0c\r\x85\xa0"
RUST_U64 = re.compile(r"\+?[0-9]+")


def frames(text):
    """SSE frames as dicts of their fields (`data` lines joined), in order."""
    out, current, data = [], {}, []
    for line in LINE.split(text):
        if line == "":
            if data:
                current["data"] = "\n".join(data)
                out.append(current)
            current, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            else:
                current[field] = value
    if data:
        current["data"] = "\n".join(data)
        out.append(current)
    return out


def replay_after(request):
    """The sequence number the hive replays after, as it parses `Last-Event-ID` (`u64`, else 0)."""
    value = request.headers.get("Last-Event-ID")
    if value is None:
        return 0
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip(RUST_WHITESPACE)
    if not RUST_U64.fullmatch(value):
        return 0
    number = int(value)
    return number if number <= U64_MAX else 0


@schemathesis.check
def event_stream_sequence(ctx, response, case):
    """The SSE stream's frames form one well-ordered event log (see the module docs)."""
    if case.operation.path != STREAM or response.status_code != 200:
        return None
    events = frames(response.content.decode("utf-8"))
    expected = replay_after(response.request) + 1
    for index, frame in enumerate(events):
        assert frame.get("id") == str(expected), (
            f"frame {index}: id {frame.get('id')!r}, expected {expected} (consecutive after Last-Event-ID)"
        )
        expected += 1
        kind = json.loads(frame["data"]).get("kind")
        assert frame.get("event") == kind, f"frame {index}: `event: {frame.get('event')}` but `kind` is {kind!r}"
        if kind in END_MARKERS:
            assert index == len(events) - 1, f"frame {index}: `{kind}` is terminal but {len(events) - index - 1} frames follow it"
            if index > 0:
                before = json.loads(events[index - 1]["data"])
                assert before == {"kind": "narration", "message": END_MARKERS[kind]}, (
                    f"frame {index}: `{kind}` must follow the narration {END_MARKERS[kind]!r}, not {before}"
                )
    if events and not response.stream_cut_short:
        last = json.loads(events[-1]["data"]).get("kind")
        assert last in END_MARKERS, f"the hive closed the stream after a `{last}` event, not a terminal one"
    return None
