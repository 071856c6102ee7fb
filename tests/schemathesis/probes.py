"""Requests schemathesis does not make, checked against protocol/openapi.yaml's promises.

    python probes.py PORT open|token

* `open`:
  - `GET /health` is rbee's `ok` as text by default and the spec's `Health` with
    `Accept: application/json`;
  - every `POST /v1/jobs` example of the spec (one per operation, and one of rbee's other
    operations) answers `200` `JobCreated`; its job's stream, read in both dialects, ends as the
    spec says and both dialects show the same log (the checks of hooks.py); bodies that are no
    operation or name an escape get `400 invalid_operation` / `invalid_name`; unknown fields are
    ignored;
  - the browser guard: a foreign `Origin`, `Sec-Fetch-Site: cross-site`, a `Host` not naming the
    hive → `403`; a POST without `Content-Type: application/json` (`/v1/shutdown` included) →
    `415`; each with `Connection: close`; the hive's own origin is let through;
  - bodies over 64 KiB (sized and chunked) get `413 body_too_large` and `Connection: close`;
  - requests with a body to a route that never reads it (`POST /health` → 405 with `Allow`) keep
    a keep-alive connection usable (async-h1 once swallowed the next request there);
  - a method the server does not know (`QUERY`) gets `501 method_not_implemented` (schemathesis'
    unexpected-method check wants 405 there, see schemathesis.toml);
  - a request whose body stalls gets `408 request_timeout` after the hive's request timeout.
* `token` (a hive with a token, requests without it): `401` with `WWW-Authenticate: Bearer` before
  the browser checks, the same keep-alive check with `401`s, several `Authorization` headers →
  `400 ambiguous_authorization`, and `QUERY` → `501`.

Every error body is checked against the spec's `ApiError`.
"""

import json
import pathlib
import socket
import sys
import time

import jsonschema_rs
import requests
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from hooks import SSE, expected_text, read_rich, read_text, text_matches  # noqa: E402

SPEC = pathlib.Path(__file__).resolve().parents[2] / "protocol" / "openapi.yaml"
LIMIT = 64 * 1024
JSON_TYPE = {"Content-Type": "application/json"}
# The hive's default `--request-timeout-secs`, which run.sh does not change.
REQUEST_TIMEOUT = 10

spec = yaml.safe_load(SPEC.read_text())


def validator(name):
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}", "components": spec["components"]})


def conforms(name, value):
    errors = [e.message for e in validator(name).iter_errors(value)]
    assert not errors, f"not a {name}: {errors}: {value}"


def api_error(response, status, code, close=False):
    what = f"{response.request.method} {response.url}"
    assert response.status_code == status, f"{what}: {response.status_code} {response.text[:300]}, expected {status}"
    assert response.headers.get("content-type", "").startswith("application/json"), f"{what}: {response.headers}"
    body = json.loads(response.content)
    conforms("ApiError", body)
    assert body["error"] == code, f"{what}: {body}, expected `{code}`"
    if close:
        assert response.headers.get("connection", "").lower() == "close", f"{what}: no `Connection: close`: {response.headers}"
    return body


def health(base):
    r = requests.get(base + "/health", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain") and r.content == b"ok", (
        f"GET /health: {r.status_code} {r.headers} {r.content[:100]!r}"
    )
    r = requests.get(base + "/health", headers={"Accept": "application/json"}, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.headers
    conforms("Health", r.json())
    print("GET /health: `ok` as text, the Health details as JSON: ok")


def stream(base, sse_url, rich):
    headers = {"Accept": SSE} if rich else {}
    r = requests.get(base + sse_url, headers=headers, timeout=30)
    assert r.status_code == 200, f"GET {sse_url}: {r.status_code}"
    assert r.headers["content-type"].split(";")[0] == SSE and r.headers.get("cache-control") == "no-cache", r.headers
    text = r.content.decode("utf-8")
    return read_rich(text, False, 0) if rich else read_text(text, False)


def jobs(base):
    examples = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    ends = {}
    for name, example in examples.items():
        body = example["value"]
        r = requests.post(base + "/v1/jobs", json=body, timeout=10)
        assert r.status_code == 200, f"POST /v1/jobs {body}: {r.status_code} {r.text[:300]}"
        created = r.json()
        conforms("JobCreated", created)
        assert created["sse_url"] == f"/v1/jobs/{created['job_id']}/stream", created
        rich = stream(base, created["sse_url"], rich=True)
        plain = stream(base, created["sse_url"], rich=False)
        for kind, _, event in rich:
            if kind not in ("narration", "marker"):
                conforms("Event", event)
        assert text_matches(plain, expected_text(rich)), f"{name}: the dialects differ:\n{plain}\n{expected_text(rich)}"
        ends[name] = plain[-1]
        if body["operation"] in ("model_list", "model_get") and rich[-2][0] == "done":
            result = rich[-2][2]
            conforms("ModelListing" if body["operation"] == "model_list" else "CachedRepo", result["result"])
    want = {
        "list": "[DONE]",
        "get": "[DONE]",
        "check": "[DONE]",
        "rbeeOther": "[ERROR] operation `worker_spawn` is not supported by this hive",
    }
    for name, line in want.items():
        assert ends.get(name) == line, f"example `{name}` ended with {ends.get(name)!r}, expected {line!r}"
    for name in ("delete", "deletePartial"):
        assert ends[name].startswith("[ERROR] "), f"example `{name}` ended with {ends[name]!r} (nothing to delete)"
    print(f"{len(examples)} operation examples: 200 JobCreated, both dialects end right and agree: ok")

    for body, code in [
        (b"nope", "invalid_operation"),
        (b"[]", "invalid_operation"),
        (b'{"ModelList":{}}', "invalid_operation"),
        (b'{"operation":"bogus"}', "invalid_operation"),
        (b'{"operation":7}', "invalid_operation"),
        (b'{"operation":"model_download"}', "invalid_operation"),
        (b'{"operation":"model_list","hive_id":null}', "invalid_operation"),
        (b'{"operation":"model_download","model":"org/../x"}', "invalid_name"),
        (b'{"operation":"model_download","model":"org/m:a/../../b"}', "invalid_name"),
        (b'{"operation":"model_download","model":"org/m:a.gguf","revision":"../x"}', "invalid_name"),
        (b'{"operation":"model_get","id":"/etc/passwd"}', "invalid_name"),
        (b'{"operation":"model_delete","id":"org/m:"}', "invalid_name"),
    ]:
        api_error(requests.post(base + "/v1/jobs", data=body, headers=JSON_TYPE, timeout=10), 400, code)
    r = requests.post(base + "/v1/jobs", json={"operation": "model_list", "hive_id": "x", "extra": [1, {"a": None}]}, timeout=10)
    assert r.status_code == 200, f"unknown fields are ignored, but: {r.status_code} {r.text[:300]}"
    print("bodies that are no operation -> 400 invalid_operation, escapes -> 400 invalid_name, extra fields ignored: ok")


def browser_guard(base, port):
    op = {"operation": "model_list", "hive_id": "localhost"}
    for headers, code in [
        ({"Origin": "http://attacker.example"}, "cross_origin"),
        ({"Origin": "null"}, "cross_origin"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross_origin"),
        ({"Sec-Fetch-Site": "same-site"}, "cross_origin"),
        ({"Host": f"attacker.example:{port}"}, "host_not_allowed"),
    ]:
        for method, path in [("GET", "/health"), ("GET", "/v1/jobs"), ("POST", "/v1/jobs")]:
            r = requests.request(method, base + path, json=op if method == "POST" else None, headers=headers, timeout=10)
            api_error(r, 403, code, close=True)
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        headers = {"Content-Type": content_type} if content_type else {}
        for path, body in [("/v1/jobs", json.dumps(op)), ("/v1/shutdown", "{}")]:
            r = requests.post(base + path, data=body.encode(), headers=headers, timeout=10)
            api_error(r, 415, "unsupported_media_type", close=True)
    for origin in (f"http://127.0.0.1:{port}",):
        r = requests.get(base + "/v1/jobs", headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"}, timeout=10)
        assert r.status_code == 200, f"the hive's own origin {origin}: {r.status_code}"
        assert not any(h.lower().startswith("access-control-") for h in r.headers), f"CORS headers: {r.headers}"
    assert requests.get(base + "/health", timeout=10).content == b"ok", "the hive stopped after a refused /v1/shutdown"
    print("browser guard: 403 cross_origin / host_not_allowed, 415 for non-JSON POSTs, own origin allowed: ok")


def too_large(base):
    sized = b'{"operation":"model_list","hive_id":"' + b"x" * LIMIT + b'"}'

    def chunked():
        for _ in range(LIMIT // 1024 + 1):
            yield b" " * 1024

    for body in (sized, chunked()):
        with requests.Session() as s:
            r = s.post(f"{base}/v1/jobs", data=body, headers=JSON_TYPE, timeout=10)
            api_error(r, 413, "body_too_large", close=True)
    print("413 body_too_large with Connection: close for bodies over 64 KiB: ok")


def keep_alive(base, method_path, status, code, rounds=40):
    with requests.Session() as s:
        for i in range(rounds):
            try:
                r = s.post(f"{base}{method_path}", json={"operation": "model_list", "hive_id": "localhost"}, timeout=5)
            except requests.RequestException as e:
                raise AssertionError(f"request {i} on one keep-alive connection got no answer: {e}") from None
            api_error(r, status, code)
            if status == 405:
                assert r.headers.get("allow"), f"405 without `Allow`: {r.headers}"
    print(f"{rounds} x POST {method_path} with a body on one connection -> {status}: ok")


def unknown_method(base):
    for method in ("QUERY", "FOO"):
        r = requests.request(method, base + "/v1/jobs", timeout=10)
        api_error(r, 501, "method_not_implemented", close=True)
    print("QUERY / FOO -> 501 method_not_implemented: ok")


def stalled(port):
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n{"
    ).encode()
    started = time.monotonic()
    answered = None
    with socket.create_connection(("127.0.0.1", int(port)), timeout=2 * REQUEST_TIMEOUT + 10) as sock:
        sock.sendall(head)
        reply = b""
        while chunk := sock.recv(65536):
            answered = answered or time.monotonic() - started
            reply += chunk
    took, closed = answered or 0, time.monotonic() - started
    status_line, _, rest = reply.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 408 "), f"stalled body: {reply[:300]!r}"
    assert b"connection: close" in headers.lower(), f"408 without `Connection: close`: {headers!r}"
    parsed = json.loads(body)
    conforms("ApiError", parsed)
    assert parsed["error"] == "request_timeout", parsed
    assert REQUEST_TIMEOUT - 1 < took < REQUEST_TIMEOUT + 5, f"the 408 came after {took:.1f}s, not the hive's {REQUEST_TIMEOUT}s"
    print(f"stalled body -> 408 request_timeout after {took:.1f}s: ok")
    # RFC 9112 §9.6: a server that sends `Connection: close` closes the connection after that
    # response (not after waiting out one more request timeout).
    assert closed < took + 2, f"the hive closed the connection {closed - took:.1f}s after its `Connection: close` 408"


def token(base):
    for headers, body in [({}, None), ({"Origin": "http://attacker.example"}, None), ({"Content-Type": "text/plain"}, b"{}")]:
        r = requests.post(base + "/v1/jobs", data=body, headers=headers, timeout=10)
        api_error(r, 401, "unauthorized", close=True)
        assert r.headers.get("www-authenticate") == "Bearer", r.headers
    s = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10)
    with s:
        s.sendall(
            b"GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n"
        )
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400 "), f"two Authorization headers: {reply[:300]!r}"
    body = json.loads(reply.partition(b"\r\n\r\n")[2])
    conforms("ApiError", body)
    assert body["error"] == "ambiguous_authorization", body
    print("401 before the browser checks, 400 ambiguous_authorization for two Authorization headers: ok")


def main():
    port, mode = sys.argv[1], sys.argv[2]
    base = f"http://127.0.0.1:{port}"
    if mode == "open":
        health(base)
        jobs(base)
        browser_guard(base, port)
        too_large(base)
        keep_alive(base, "/health", 405, "method_not_allowed")
        unknown_method(base)
        stalled(port)
    else:
        token(base)
        keep_alive(base, "/v1/jobs", 401, "unauthorized")
        unknown_method(base)


if __name__ == "__main__":
    main()
