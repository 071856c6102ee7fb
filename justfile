# rbee-smol tasks. `just test` is the one test command (CI runs it through .ci/run).

set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TERM_COLOR := "never"

default: test

# Build the binaries the end-to-end tests spawn.
build:
    cargo build --workspace --bins

# Everything CI checks: no tokio, formatting, lints, docs, unused dependencies, all tests.
test: no-tokio lint doc unused-deps build py
    cargo test --workspace --all-targets --no-fail-fast -- --test-threads 4
    cargo test --workspace --doc
    bash tests/schemathesis/run.sh
    {{just_executable()}} demo
    {{just_executable()}} missing-peers

# Says loudly which real peers the tests could not use, looking where the tests look
# (tests/src/harness/peer.rs callers): locally their tests skip with a loud line, under CI=true
# they fail.
missing-peers:
    #!/usr/bin/env bash
    missing=()
    [ -x /usr/bin/chromium ] || missing+=("chromium (the headless-browser attack test was SKIPPED)")
    [ -x /usr/bin/tinyproxy ] || [ -x /usr/sbin/tinyproxy ] || missing+=("tinyproxy (the proxy test was SKIPPED)")
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=("nginx (the keep-alive test was SKIPPED)")
    [ -x .venv/bin/python ] || missing+=(".venv with huggingface_hub (just py): the interop, mirror and scan tests FAILED")
    command -v strace >/dev/null 2>&1 || missing+=("strace (the fsync order test was SKIPPED)")
    [ -x /usr/sbin/sshd ] || missing+=("openssh-server (the SSH tests were SKIPPED)")
    command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=("iproute2 (the SSH and redirect-refusal tests were SKIPPED)")
    if [ ${#missing[@]} -gt 0 ]; then
        printf '\n!!!!! MISSING PEERS: %s !!!!!\n\n' "${missing[*]}" >&2
    else
        echo "every real peer was present (chromium, tinyproxy, nginx, strace, sshd, iproute2): no test was skipped"
    fi

# Fails if tokio can reach any build of ours. Fails closed: a cargo error fails the recipe.
# Cargo.lock does hold `tokio`, for one path we allow: async-std → wasm-bindgen-futures (wasm32
# only) → tokio, which wasm-bindgen-futures declares under
# `cfg(all(target_os = "emscripten", wasm_bindgen_unstable_tokio))` — an emscripten target with an
# unstable cfg flag, neither of which we build. Anything else depending on tokio, or any tokio-*
# crate, fails.
no-tokio:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! grep -qE '^name = "tokio' Cargo.lock; then echo "no tokio in Cargo.lock"; exit 0; fi
    locked=$(grep -E '^name = "tokio' Cargo.lock | sort -u)
    if [ "$locked" != 'name = "tokio"' ]; then echo "tokio crates in Cargo.lock:"; echo "$locked"; exit 1; fi
    tree() { cargo tree --workspace -e normal,build,dev -i tokio --prefix none --format '{p}' "$@"; }
    if ! host=$(tree); then echo "cargo tree failed (host target)"; exit 1; fi
    if [ -n "$host" ]; then echo "tokio in the host dependency tree:"; tree --prefix indent; exit 1; fi
    if ! all=$(tree --target all --depth 1); then echo "cargo tree --target all failed"; exit 1; fi
    dependents=$(echo "$all" | awk 'NR > 1 && NF { print $1 }' | sort -u)
    if [ "$dependents" != "wasm-bindgen-futures" ]; then
        echo "tokio is depended on by more than the allowed emscripten-only wasm-bindgen-futures:"
        tree --target all
        exit 1
    fi
    echo "no tokio in the dependency tree (any target; only the emscripten-only wasm-bindgen-futures path is locked)"

# Zero warnings and clippy clean.
lint:
    cargo fmt --all -- --check
    RUSTFLAGS="-D warnings" cargo clippy --workspace --all-targets -- -D warnings

# The docs build without a warning (broken links, missing docs).
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

# No crate declares a dependency it does not use (cargo-machete, installed on first use).
unused-deps:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v cargo-machete >/dev/null 2>&1; then cargo install --quiet --locked cargo-machete --version 0.9.2; fi
    cargo machete

# The huggingface_hub the interop tests and benchmarks run against (what pip resolved when it was
# pinned; BENCHMARKS.md records the version each run used). Bump it deliberately.
hf_hub_version := "2.4.0"

# Python peers (huggingface_hub, pinned) in a local venv, used by interop tests and benchmarks.
py:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
    .venv/bin/pip install -q --disable-pip-version-check "huggingface_hub=={{hf_hub_version}}"

# hf_transfer, the Rust downloader huggingface_hub can use: the 16-connection peer of the `cdn` and
# `cdn-paced` benchmarks (BENCHMARKS.md records the version). Pinned like huggingface_hub.
hf_transfer_version := "0.1.9"

# The benchmarks' Python peers: `py`, plus hf_transfer (pinned).
py-bench: py
    .venv/bin/pip install -q --disable-pip-version-check "hf_transfer=={{hf_transfer_version}}"

# Offline demo, the README's transcript: a fake hub, a local hive, a download cut by Ctrl+C (SIGINT),
# the job list, the resumed download, `rbee hive stop`. Keeper output is plain lines (not a TTY).
# The hub's CDN is one 4 MiB/s link however many parts the hive opens (`--link-rate`), and the
# Ctrl+C goes out once progress shows a MiB on disk, so it lands mid-download on any machine; the
# demo fails unless the keeper exits 130 and the second download resumes. Its fixed ports
# (18080/18081/17835) lie below Linux's ephemeral range, where the tests' free_port picks.
demo: build
    #!/usr/bin/env bash
    set -euo pipefail
    for port in 18080 18081 17835; do
        if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "demo: port $port is in use" >&2; exit 1; fi
    done
    work=$(mktemp -d)
    export PATH="$PWD/target/debug:$PATH" XDG_CACHE_HOME="$work/state" HF_HUB_CACHE="$work/cache"
    export HF_ENDPOINT=http://127.0.0.1:18080 RBEE_HIVE_ADDR=127.0.0.1:17835
    unset HF_TOKEN HF_HOME RBEE_HIVE_URL RBEE_HIVE_TOKEN
    fake-hub --port 18080 --cdn-port 18081 --rate 0 --link-rate $((4 << 20)) --file model.gguf:32MiB 2>/dev/null &
    hub=$!
    trap 'rbee hive stop >/dev/null 2>&1 || true; kill $hub 2>/dev/null || true; rm -rf "$work"' EXIT
    fail() { echo "demo: $*" >&2; exit 1; }
    deadline=$((SECONDS + 60))
    until (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "the fake hub did not start"; sleep 0.1
    done
    say() { printf '$ %s\n' "$*"; }
    say rbee hive start
    rbee hive start
    say rbee model download rbee-demo/tiny-model model.gguf
    rbee model download rbee-demo/tiny-model model.gguf > >(cat) 2> >(tee "$work/first" >&2) &
    keeper=$!
    # Ctrl+C once a progress line shows a MiB or more on disk (there is then something to resume).
    until grep -qE '^⏳ model.gguf [0-9.]+ MiB /' "$work/first" 2>/dev/null; do
        kill -0 $keeper 2>/dev/null || fail "the download ended before any progress showed"
        [ $SECONDS -lt $deadline ] || fail "no progress within 60 s"
        sleep 0.05
    done
    echo "^C"
    kill -INT $keeper 2>/dev/null || fail "the download had already ended: the Ctrl+C did not land mid-download"
    code=0; wait $keeper || code=$?
    say 'echo $?'
    echo $code
    [ "$code" = 130 ] || fail "the keeper exited $code, not 130: the Ctrl+C did not land mid-download"
    say rbee job list
    rbee job list | tee "$work/jobs"
    grep -q ' cancelled ' "$work/jobs" || fail "the job list shows no cancelled job"
    say rbee model download rbee-demo/tiny-model model.gguf
    rbee model download rbee-demo/tiny-model model.gguf 2>&1 | tee "$work/second"
    grep -q '^↩️  resuming `model.gguf`' "$work/second" || fail "the second download did not resume"
    grep -q '^✅ /' "$work/second" || fail "the second download printed no path"
    say rbee hive stop
    rbee hive stop

# Run the hive against the real hub with your cache.
hive *ARGS:
    cargo run --release --bin rbee-hive -- {{ARGS}}

# Benchmarks: rewrites BENCHMARKS.md.
bench: py-bench
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

# The HF mirror (issue 15) vs nginx serving the same 2 GiB blob (installs nginx-light with apt-get
# when missing), written into BENCHMARKS.md's mirror block.
bench-mirror:
    cargo build --release --workspace --bins
    bash bench/mirror.sh
