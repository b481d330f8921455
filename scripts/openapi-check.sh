#!/usr/bin/env bash
# The OpenAPI validator the API tests check the served document with: openapi-spec-validator
# from PyPI, in a virtualenv of its own.
#
#   scripts/openapi-check.sh install        # the virtualenv (idempotent)
#   scripts/openapi-check.sh FILE           # validate an OpenAPI document
#
# The virtualenv lives in $STEPWISE_OPENAPI_VENV (default ~/.cache/stepwise/openapi-venv).
set -euo pipefail

venv="${STEPWISE_OPENAPI_VENV:-$HOME/.cache/stepwise/openapi-venv}"
version=0.9.0

installed() {
    [[ -x "$venv/bin/openapi-spec-validator" ]] &&
        [[ $("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('openapi-spec-validator'))" 2>/dev/null) == "$version" ]]
}

case "${1:-}" in
install)
    if installed; then
        exit 0
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$version"
    installed || { echo "openapi-check: openapi-spec-validator $version did not install in $venv" >&2; exit 1; }
    ;;
"" | -h | --help)
    sed -n '2,8p' "$0"
    ;;
*)
    installed || { echo "openapi-check: not installed; run $0 install" >&2; exit 1; }
    exec "$venv/bin/openapi-spec-validator" "$1"
    ;;
esac
