#!/usr/bin/env bash
# Builds and opens the Stepwise desktop app on its embedded defaults: the database in your data
# directory, a demo workspace with the bundled workflows, and a run waiting for your approval.
#
# Without a display (no $DISPLAY or $WAYLAND_DISPLAY) it says so and runs the headless CLI demo
# instead: it builds `stepwise` and runs the fix-and-test example on a fresh copy of the demo
# project; the run stops when it needs your approval (exit code 3), and the script lists what
# waits and how to approve it, and exits 0.
#
#   ./run.sh                          # the app (or, headless, the CLI demo)
#   ./run.sh --input run_tests=false  # headless: extra arguments go to `stepwise run`
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

say() { printf '%s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
# Builds PACKAGE in release and sets $built to the absolute path of its BINARY.
build_release() {
    cargo build --release -p "$1"
    local dir="${CARGO_TARGET_DIR:-target}"
    [[ $dir == /* ]] || dir="$PWD/$dir"
    built="$dir/release/$2"
    [[ -x "$built" ]] || die "the build did not produce $built"
}

# --- System packages: a C compiler (SQLite is built from source) and python3 (the demo's tests).
missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ((${#missing[@]} > 0)); then
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "Installing ${missing[*]} ..."
        if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }; then
            command -v cc >/dev/null 2>&1 || die "could not install ${missing[*]}"
            say "run.sh: note: could not install ${missing[*]}; the demo's tests need python3" >&2
        fi
    elif ! command -v cc >/dev/null 2>&1; then
        die "a C compiler is needed; install it with: sudo apt-get install build-essential pkg-config python3"
    else
        say "run.sh: note: python3 is not installed; the demo's tests need it (sudo apt-get install python3)" >&2
    fi
fi

# --- Rust, installed with rustup.
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    die "cargo not found. Install Rust with rustup (https://rustup.rs):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
then open a new shell (or run: source \"\$HOME/.cargo/env\") and run ./run.sh again."
fi

# --- The desktop app, when there is a display to show it on.
if [[ -n "${DISPLAY:-}" || -n "${WAYLAND_DISPLAY:-}" ]]; then
    gui_packages=(libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev
        librsvg2-dev libayatana-appindicator3-dev libxdo-dev)
    gui_missing=()
    for package in "${gui_packages[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || gui_missing+=("$package")
    done
    if ((${#gui_missing[@]} > 0)); then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            say "Installing ${gui_missing[*]} ..."
            apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${gui_missing[@]}"
        else
            die "the app needs: sudo apt-get install ${gui_missing[*]}"
        fi
    fi
    command -v npm >/dev/null 2>&1 || die "the app's UI needs Node.js 20.19 or later with npm"
    say "Building the UI ..."
    (cd ui && npm install --no-audit --no-fund && npm run build)
    say "Building the app (release; a few minutes the first time) ..."
    build_release stepwise-app stepwise-app
    app=$built
    say "Opening Stepwise. The database and demo workspace are in ${XDG_DATA_HOME:-$HOME/.local/share}/stepwise."
    exec "$app"
fi
say "No display (\$DISPLAY and \$WAYLAND_DISPLAY are not set): running the headless CLI demo instead."
say

# --- Build.
say "Building stepwise (release) ..."
build_release stepwise-cli stepwise
stepwise=$built

# --- A fresh demo workspace, recreated every time.
data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/stepwise"
workspace="$data_dir/demo-workspace"
rm -rf "$workspace"
mkdir -p "$data_dir"
cp -R workflows/demo "$workspace"
say "Demo workspace: $workspace"
say

# --- Run. The database defaults to $data_dir/stepwise.db.
set +e
"$stepwise" run workflows/fix-and-test.yaml --workspace "$workspace" "$@"
code=$?
set -e

case $code in
    0)
        say
        say "The run succeeded. See it with: $stepwise runs; $stepwise show RUN"
        ;;
    3)
        say
        say "The run is waiting for a person: edits and commands need approval by default."
        say
        # This run's questions only (the database may hold other runs).
        run_id=$("$stepwise" runs --json --limit 1 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])' 2>/dev/null || true)
        "$stepwise" approvals ${run_id:+"$run_id"} || true
        say
        say "Approve (RUN is the run id above, or any unique prefix of it):"
        # Print the exact commands when the JSON names run and step; otherwise the generic form.
        exact=""
        if command -v python3 >/dev/null 2>&1; then
            exact=$("$stepwise" approvals ${run_id:+"$run_id"} --json 2>/dev/null | python3 -c '
import json, sys
def walk(v):
    if isinstance(v, dict):
        run = v.get("run_id") or v.get("run")
        step = v.get("step") or v.get("step_id")
        if isinstance(run, str) and isinstance(step, str):
            yield run, step
            return
        for x in v.values():
            yield from walk(x)
    elif isinstance(v, list):
        for x in v:
            yield from walk(x)
try:
    seen = []
    for pair in walk(json.load(sys.stdin)):
        if pair not in seen:
            seen.append(pair)
            print("  %s approve %s %s" % (sys.argv[1], pair[0], pair[1]))
except Exception:
    pass
' "$stepwise" || true)
        fi
        if [[ -n "$exact" ]]; then
            say "$exact"
        else
            say "  $stepwise approve RUN STEP"
        fi
        say
        say "Or reject with a reason:  $stepwise reject RUN STEP --reason \"...\""
        say "Inspect the run:          $stepwise show RUN   /   $stepwise events RUN"
        say "Each approval continues the run until it waits again or finishes."
        exit 0
        ;;
    *)
        exit "$code"
        ;;
esac
