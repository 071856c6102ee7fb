"""Requests schemathesis does not make, checked against protocol/openapi.yaml's promises.

    python probes.py PORT open|token

* `open`: bodies over 64 KiB (sized and chunked) get `413 body_too_large` and `Connection: close`;
  requests with a body to a route that never reads it (`POST /health` → 405 with `Allow`) keep a
  keep-alive connection usable (async-h1 once swallowed the next request there).
* `token`: the same keep-alive check with `401`s, on a hive that has a token.
"""

import json
import sys

import requests

LIMIT = 64 * 1024
ERROR_KEYS = {"error", "message"}


def api_error(response, status, code):
    assert response.status_code == status, f"{response.request.method} {response.url}: {response.status_code}, expected {status}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = json.loads(response.content)
    assert set(body) == ERROR_KEYS and body["error"] == code, body
    return body


def too_large(base):
    sized = b'{"operation":"model_list","hive_id":"' + b"x" * LIMIT + b'"}'

    def chunked():
        for _ in range(LIMIT // 1024 + 1):
            yield b" " * 1024

    for body in (sized, chunked()):
        with requests.Session() as s:
            r = s.post(f"{base}/v1/jobs", data=body, timeout=10)
            api_error(r, 413, "body_too_large")
            assert r.headers.get("connection", "").lower() == "close", f"413 without `Connection: close`: {r.headers}"
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


def main():
    port, mode = sys.argv[1], sys.argv[2]
    base = f"http://127.0.0.1:{port}"
    if mode == "open":
        too_large(base)
        keep_alive(base, "/health", 405, "method_not_allowed")
    else:
        keep_alive(base, "/v1/jobs", 401, "unauthorized")


if __name__ == "__main__":
    main()
