#!/usr/bin/env bash
# Checks a running rbee-hive against protocol/openapi.yaml with schemathesis (PyPI): no 5xx, and
# every status code, content type, header and body (SSE frames included) as the spec says.
#
#   bash tests/schemathesis/run.sh [extra `st run` flags, e.g. --seed 1 or --max-examples 100]
#
# First spec_sync.py checks that the spec names what protocol/src names (error codes and their
# statuses, operations, event kinds). Then two runs, each against a fresh hive with its own
# temporary HF cache (seeded with a few repos so listing, lookup and removal answer 200), upstream
# pointed at a closed port (downloads fail fast), and its HOME, TMPDIR and working directory in
# the same temporary tree:
#   1. open hive (no token), every check, all phases, POST /v1/shutdown excluded;
#   2. hive with a token, no credentials sent: every answer must be a conforming 401.
# hooks.py alternates `Accept` where it picks the answer (the stream's two dialects, /health's
# text or JSON) and checks each stream's dialect, ids and end marker, and that both dialects of an
# ended job show one log. probes.py adds what schemathesis does not send (every operation example
# streamed in both dialects, the browser guard's 403/415, bodies over 64 KiB, keep-alive reuse
# after a reply that left the body unread, an unknown method's 501, a stalled body's 408).
# `GET /v1/events` never ends on its own (one stream of every job, for the hive's page), so it is
# left out here; tests/e2e/page.rs drives it from a real browser.
# Afterwards it asserts that each hive is still up, did not panic, and wrote nothing outside its
# cache.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

SCHEMATHESIS_VERSION=${SCHEMATHESIS_VERSION:-4.32.5}
MAX_EXAMPLES=${MAX_EXAMPLES:-30}
spec="$repo/protocol/openapi.yaml"
hive_bin="$repo/target/debug/rbee-hive"

# --- tools ------------------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
if ! .venv/bin/st --version 2>/dev/null | grep -qx "st, version $SCHEMATHESIS_VERSION"; then
    .venv/bin/pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
st="$repo/.venv/bin/st"
py="$repo/.venv/bin/python"
"$st" --version
cargo build -q -p rbee-hive --bin rbee-hive
"$py" "$repo/tests/schemathesis/spec_sync.py"

# --- scratch tree -----------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/rbee-schemathesis.XXXXXX")
hive_pid=""
stop_hive() {
    if [ -n "$hive_pid" ]; then
        kill "$hive_pid" 2>/dev/null || true
        wait "$hive_pid" 2>/dev/null || true
        hive_pid=""
    fi
}
cleanup() {
    stop_hive
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A repo as huggingface_hub lays it out: two files sharing one blob, a ref, and a partial download.
seed_repo() {
    local cache=$1 repo=$2 dir
    dir="$cache/models--${repo//\//--}"
    local commit=0123456789abcdef0123456789abcdef01234567
    local blob=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    local partial=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
    mkdir -p "$dir/blobs" "$dir/snapshots/$commit/sub" "$dir/refs" "$cache/.locks/models--${repo//\//--}"
    printf 'tiny model bytes\n' >"$dir/blobs/$blob"
    ln -s "../../blobs/$blob" "$dir/snapshots/$commit/model.gguf"
    ln -s "../../../blobs/$blob" "$dir/snapshots/$commit/sub/copy.gguf"
    printf '%s' "$commit" >"$dir/refs/main"
    printf 'half' >"$dir/blobs/$partial.incomplete"
    printf '{"file":"big.gguf","size":8}' >"$cache/.locks/models--${repo//\//--}/$partial.meta"
}

# start_hive NAME [hive flags...]: a hive in $work/NAME/{cache,home,tmp,cwd}; sets $port, $hive_pid.
start_hive() {
    local name=$1 root
    shift
    root="$work/$name"
    mkdir -p "$root/cache" "$root/home" "$root/tmp" "$root/cwd"
    seed_repo "$root/cache" rbee-demo/tiny-model
    seed_repo "$root/cache" rbee-demo/keep-model
    seed_repo "$root/cache" gpt2
    port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (
        cd "$root/cwd"
        exec env -u HF_HOME -u HF_TOKEN -u RBEE_HIVE_TOKEN -u RBEE_HIVE_ADDR \
            HOME="$root/home" TMPDIR="$root/tmp" HF_ENDPOINT=http://127.0.0.1:9 HF_HUB_CACHE="$root/cache" \
            "$hive_bin" --addr "127.0.0.1:$port" --retries 0 --retry-backoff-ms 10 --heartbeat-secs 1 "$@"
    ) >"$root/hive.log" 2>&1 &
    hive_pid=$!
    # Up, answering, and on the cache we gave it (any status: the token run answers 401).
    "$py" - "$port" "$root/cache" "$name" <<'PY'
import json, sys, time, urllib.error, urllib.request
port, cache, name = sys.argv[1], sys.argv[2], sys.argv[3]
deadline = time.monotonic() + 20
health = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Accept": "application/json"})
while True:
    try:
        body = json.load(urllib.request.urlopen(health, timeout=2))
        assert body["cache_dir"] == cache, f"hive uses cache {body['cache_dir']!r}, not {cache!r}"
        break
    except urllib.error.HTTPError as e:
        assert name == "token" and e.code == 401, f"/health answered {e.code}"
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"the {name} hive did not come up on port {port}")
        time.sleep(0.1)
PY
}

# check_hive NAME: still up, no panic, and nothing written outside its cache.
check_hive() {
    local name=$1 root="$work/$1" stray
    if ! kill -0 "$hive_pid" 2>/dev/null; then
        echo "FAIL: the $name hive died during the run; its log:" >&2
        cat "$root/hive.log" >&2
        return 1
    fi
    if grep -q "panicked" "$root/hive.log"; then
        echo "FAIL: the $name hive panicked; its log:" >&2
        cat "$root/hive.log" >&2
        return 1
    fi
    stray=$(cd "$root" && find . -mindepth 1 -not -path './cache' -not -path './cache/*' \
        -not -path ./home -not -path ./tmp -not -path ./cwd -not -path ./hive.log)
    if [ -n "$stray" ]; then
        echo "FAIL: the $name hive wrote outside its cache dir ($root/cache):" >&2
        echo "$stray" >&2
        return 1
    fi
    echo "the $name hive stayed up and wrote only into its cache"
}

# run_st NAME [st flags...]: schemathesis against the hive started last, from a scratch cwd.
run_st() {
    local name=$1
    shift
    mkdir -p "$work/st-$name"
    (
        cd "$work/st-$name"
        SCHEMATHESIS_HOOKS="$repo/tests/schemathesis/hooks.py" RBEE_ST_SEEN="$work/st-$name/seen.json" \
            "$st" --config-file "$repo/tests/schemathesis/schemathesis.toml" run "$spec" \
            --url "http://127.0.0.1:$port" \
            --exclude-path /v1/shutdown \
            --exclude-path /v1/events \
            --request-timeout 15 \
            --generation-database none \
            --no-color \
            "$@"
    ) || {
        echo "-- last lines of the $name hive's log:"
        tail -n 30 "$work/$name/hive.log"
        return 1
    }
}

# seen_all NAME WHAT...: hooks.py's checks judged at least one 200 of each WHAT in run NAME.
seen_all() {
    local name=$1
    shift
    "$py" - "$work/st-$name/seen.json" "$@" <<'PY'
import json, sys
path, wanted = sys.argv[1], sys.argv[2:]
try:
    seen = json.load(open(path))
except OSError:
    sys.exit(f"FAIL: hooks.py wrote no {path}: were the hooks loaded?")
print("hooks.py judged:", ", ".join(f"{n} x {what}" for what, n in sorted(seen.items())) or "nothing")
missing = [what for what in wanted if not seen.get(what)]
if missing:
    sys.exit(f"FAIL: the hooks' checks never saw: {', '.join(missing)} (vacuous: no such 200 reached them)")
PY
}

start=$(date +%s)
status=0

# --- 1. open hive: every check ------------------------------------------------------------------
# The probes first: schemathesis mixes the spec's examples, so its run may remove the seeded
# files the probes' `model_get` example names.
start_hive open
echo "== probes: open hive on 127.0.0.1:$port"
"$py" "$repo/tests/schemathesis/probes.py" "$port" open || status=1
echo "== schemathesis: open hive on 127.0.0.1:$port"
run_st open --checks all --max-examples "$MAX_EXAMPLES" --workers 2 "$@" || status=1
seen_all open "health text" "health json" "stream text" "stream rich" "stream ended" "stream dialects compared" \
    || status=1
check_hive open || status=1
stop_hive

# --- 2. hive with a token, no credentials: conforming 401s -------------------------------------
start_hive token --token "schemathesis-token-$RANDOM$RANDOM"
echo "== probes: hive with a token on 127.0.0.1:$port, requests without it"
"$py" "$repo/tests/schemathesis/probes.py" "$port" token || status=1
echo "== schemathesis: hive with a token on 127.0.0.1:$port, requests without it"
run_st token --checks all --max-examples 5 --workers 2 --phases examples,fuzzing "$@" || status=1
check_hive token || status=1
stop_hive

echo "schemathesis: $(( $(date +%s) - start ))s, $([ "$status" = 0 ] && echo "no failures" || echo "FAILED")"
exit "$status"
