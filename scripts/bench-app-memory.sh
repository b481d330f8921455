#!/usr/bin/env bash
# The app's idle memory benchmark: the proportional set size (PSS) of the app's whole process
# tree (WebKit's processes included), next to the bare Tauri window of ../shared/tauri-floor,
# both debug builds with the embedded UI, started under the same Xvfb and measured the same way
# (scripts/pss-tree.py) in the same run, alternately, ROUNDS times each (the floor alone moves
# by up to 10 MB between starts). Prints JSON; the goal is a median at most 60 MB above the
# floor's. A report, not a test: it fails only when something cannot be built or started.
#
#   scripts/bench-app-memory.sh [SECONDS_IDLE]      # default 8; ROUNDS=3 by default
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
idle="${1:-8}"
rounds="${ROUNDS:-3}"
floor_src="${STEPWISE_TAURI_FLOOR:-../shared/tauri-floor}"
[[ -d $floor_src ]] || floor_src=benches/tauri-floor # our copy, for a clean clone
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

# A display of its own: Xvfb picks a free number and writes it to fd 3.
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" >/dev/null 2>&1 &
xvfb_pid=$!
for _ in $(seq 50); do [[ -s $work/display ]] && break; sleep 0.1; done
display=":$(head -n1 "$work/display")"

measure() { # NAME BINARY: start it, let it settle, sum the tree's PSS, stop it
    local name=$1 binary=$2
    rm -rf "$work/$name"
    DISPLAY=$display XDG_DATA_HOME="$work/$name/data" XDG_CONFIG_HOME="$work/$name/config" \
        STEPWISE_DB="$work/$name/db" "$binary" >/dev/null 2>&1 &
    app_pid=$!
    sleep "$idle"
    kill -0 "$app_pid" 2>/dev/null || { echo "bench-app-memory: $name exited early" >&2; exit 1; }
    python3 scripts/pss-tree.py "$app_pid"
    kill "$app_pid"; wait "$app_pid" 2>/dev/null || true
    app_pid=""
}

floor=() app=()
for _ in $(seq "$rounds"); do
    floor+=("$(measure floor "$target/debug/tauri-floor")")
    app+=("$(measure app "$target/debug/stepwise-app")")
done

python3 - "${floor[*]}" "${app[*]}" <<'EOF'
import json, statistics, sys
floor = [int(v) for v in sys.argv[1].split()]
app = [int(v) for v in sys.argv[2].split()]
floor_median, app_median = statistics.median(floor), statistics.median(app)
print(json.dumps({
    "floor_pss_mb": floor, "app_pss_mb": app,
    "floor_median_mb": floor_median, "app_median_mb": app_median,
    "above_floor_mb": app_median - floor_median,
    "above_floor_range_mb": [min(app) - max(floor), max(app) - min(floor)],
    "goal_above_floor_mb": 60,
}))
EOF
