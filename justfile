# rbee-smol tasks. `just test` is the one test command (CI runs it through .ci/run).

set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TERM_COLOR := "never"

default: test

# Build the binaries the end-to-end tests spawn.
build:
    cargo build --workspace --bins

# Everything CI checks: no tokio, formatting, lints, all tests.
test: no-tokio lint build py
    cargo test --workspace --all-targets --no-fail-fast -- --test-threads 4
    cargo test --workspace --doc
    bash tests/schemathesis/run.sh

# Fails if tokio appears anywhere in the dependency tree.
no-tokio:
    #!/usr/bin/env bash
    set -euo pipefail
    out=$(cargo tree --workspace -e normal,build,dev -i tokio 2>&1 || true)
    if echo "$out" | grep -q '^tokio'; then echo "tokio found in the tree:"; echo "$out"; exit 1; fi
    echo "no tokio in the dependency tree"

# Zero warnings and clippy clean.
lint:
    cargo fmt --all -- --check
    RUSTFLAGS="-D warnings" cargo clippy --workspace --all-targets -- -D warnings

# Python peers (huggingface_hub) in a local venv, used by interop tests and benchmarks.
py:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
    .venv/bin/pip install -q --disable-pip-version-check huggingface_hub

# Offline demo, the README's transcript: a fake hub, a local hive, a download cut by Ctrl+C (SIGINT),
# the job list, the resumed download, `rbee hive stop`. Keeper output is plain lines (not a TTY).
demo: build
    #!/usr/bin/env bash
    set -euo pipefail
    work=$(mktemp -d)
    export PATH="$PWD/target/debug:$PATH" XDG_CACHE_HOME="$work/state" HF_HUB_CACHE="$work/cache"
    export HF_ENDPOINT=http://127.0.0.1:18080 RBEE_HIVE_ADDR=127.0.0.1:17835
    unset HF_TOKEN HF_HOME RBEE_HIVE_URL RBEE_HIVE_TOKEN
    fake-hub --port 18080 --cdn-port 18081 --rate $((4 << 20)) --file model.gguf:32MiB 2>/dev/null &
    hub=$!
    trap 'rbee hive stop >/dev/null 2>&1 || true; kill $hub 2>/dev/null || true; rm -rf "$work"' EXIT
    until (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null; do sleep 0.1; done
    say() { printf '$ %s\n' "$*"; }
    say rbee hive start
    rbee hive start
    say rbee model download rbee-demo/tiny-model model.gguf
    rbee model download rbee-demo/tiny-model model.gguf > >(cat) 2> >(cat >&2) &
    keeper=$!
    sleep 3
    echo "^C"
    kill -INT $keeper
    code=0; wait $keeper || code=$?
    say 'echo $?'
    echo $code
    say rbee job list
    rbee job list
    say rbee model download rbee-demo/tiny-model model.gguf
    rbee model download rbee-demo/tiny-model model.gguf 2>&1 | cat
    say rbee hive stop
    rbee hive stop

# Run the hive against the real hub with your cache.
hive *ARGS:
    cargo run --release --bin rbee-hive -- {{ARGS}}

# Benchmarks: rewrites BENCHMARKS.md.
bench:
    cargo build --release --workspace --bins
    bash bench/run.sh

# Checks a running hive against protocol/openapi.yaml with schemathesis (in .venv).
schemathesis: build
    bash tests/schemathesis/run.sh

# Full-size robustness runs (release build), printing figures for BENCHMARKS.md: 200 random-point
# cancels, 1000 SSE subscribers over 100 jobs, 10 000 short jobs, 20 000 cases per property.
soak:
    cargo build --release --workspace --bins
    bash bench/soak.sh
