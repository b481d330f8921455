#!/usr/bin/env bash
# The app's idle memory benchmark: the proportional set size (PSS) of the app's whole process
# tree (WebKit's processes included), next to the bare Tauri window of ../shared/tauri-floor,
# both debug builds with the embedded UI, started under the same Xvfb and measured the same way
# (scripts/pss-tree.py) in the same run. Prints JSON; the goal is at most 60 MB above the floor.
#
#   scripts/bench-app-memory.sh [SECONDS_IDLE]      # default 8
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
idle="${1:-8}"
floor_src="${STEPWISE_TAURI_FLOOR:-../shared/tauri-floor}"
[[ -d $floor_src ]] || { echo "bench-app-memory: no Tauri floor at $floor_src" >&2; exit 1; }
work=$(mktemp -d)
cleanup() {
    [[ -n "${app_pid:-}" ]] && kill "$app_pid" 2>/dev/null || true
    [[ -n "${xvfb_pid:-}" ]] && kill "$xvfb_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

target="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TARGET_DIR="$target"
(cd ui && npm run build >/dev/null)
cargo build -p stepwise-app >/dev/null
cp -r "$floor_src" "$work/floor"
(cd "$work/floor" && cargo build --features tauri/custom-protocol >/dev/null)

Xvfb :97 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
sleep 1

measure() { # NAME BINARY: start it, let it settle, sum the tree's PSS, stop it
    local name=$1 binary=$2
    DISPLAY=:97 XDG_DATA_HOME="$work/data-$name" XDG_CONFIG_HOME="$work/config-$name" \
        STEPWISE_DB="$work/$name.db" "$binary" >/dev/null 2>&1 &
    app_pid=$!
    sleep "$idle"
    local mb
    mb=$(python3 scripts/pss-tree.py "$app_pid")
    kill "$app_pid"; wait "$app_pid" 2>/dev/null || true
    app_pid=""
    echo "$mb"
}

floor_mb=$(measure floor "$target/debug/tauri-floor")
app_mb=$(measure app "$target/debug/stepwise-app")
printf '{"floor_pss_mb": %s, "app_pss_mb": %s, "above_floor_mb": %s, "goal_above_floor_mb": 60}\n' \
    "$floor_mb" "$app_mb" "$((app_mb - floor_mb))"
