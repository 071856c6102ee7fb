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

# Run a fake HF hub and a hive so you can try `rbee model download` and Ctrl+C offline.
demo: build
    #!/usr/bin/env bash
    set -euo pipefail
    cache=$(mktemp -d)
    ./target/debug/fake-hub --port 18080 --cdn-port 18081 &
    hub=$!
    trap 'kill $hub $hive 2>/dev/null; rm -rf "$cache"' EXIT
    sleep 0.5
    HF_ENDPOINT=http://127.0.0.1:18080 HF_HUB_CACHE="$cache" ./target/debug/rbee-hive --addr 127.0.0.1:7835 --heartbeat-secs 3 &
    hive=$!
    sleep 0.5
    echo
    echo "Try (in another terminal), then press Ctrl+C mid-download:"
    echo "  ./target/debug/rbee model download rbee-demo/tiny-model model.gguf"
    echo "Cache: $cache   (Ctrl+C here stops the demo)"
    wait $hive

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
