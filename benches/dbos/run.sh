#!/usr/bin/env bash
# DBOS (Python) per-step cost on a PostgreSQL server: see README.md beside this script.
#
#   benches/dbos/run.sh DATABASE_URL [--rounds N] [other bench.py options]
#
# DATABASE_URL: a libpq-style URL of a role that may CREATE DATABASE, e.g. the private test
# cluster's admin URL: eval "$(scripts/pg-cluster.sh env /tmp/pgt)"; run.sh "$STEPWISE_TEST_PG".
# Makes (or reuses) a venv at ${STEPWISE_BENCH_VENV:-$HOME/.cache/stepwise-dbos-venv} holding
# exactly requirements.txt (dbos==3.4.0 and its dependencies, pinned), then runs bench.py there.
# The result is one JSON object on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $# -lt 1 || "$1" == -* ]]; then
    sed -n '2,9p' "$0" >&2
    exit 2
fi

venv=${STEPWISE_BENCH_VENV:-$HOME/.cache/stepwise-dbos-venv}
python=${PYTHON:-python3}

if ! command -v "$python" >/dev/null 2>&1; then
    echo "run.sh: $python not found (DBOS needs Python 3.10 or newer)" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "run.sh: $("$python" --version 2>&1) is too old: DBOS needs Python 3.10 or newer" >&2
    exit 1
fi

# The venv is reused while it holds exactly requirements.txt; a stamp records which one.
stamp="$venv/.stepwise-requirements"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "run.sh: creating the venv $venv" >&2
    "$python" -m venv "$venv" || {
        echo "run.sh: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
if ! cmp -s "$here/requirements.txt" "$stamp"; then
    echo "run.sh: installing requirements.txt into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$here/requirements.txt" >&2 || {
        echo "run.sh: pip install of requirements.txt failed" >&2
        exit 1
    }
    cp "$here/requirements.txt" "$stamp"
fi

exec "$venv/bin/python" "$here/bench.py" "$@"
