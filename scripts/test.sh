#!/usr/bin/env bash
# The test command: installs what the tests need (same install as users, plus the test corpus), then lint,
# type-check and the whole test suite with coverage. Used verbatim by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export HAYSTACK_TELEMETRY_ENABLED=False
bash scripts/install.sh
bash scripts/apt-install.sh scripts/apt-packages-test.txt
bash scripts/fetch_test_corpus.sh
.venv/bin/ruff check components app tests bench scripts
.venv/bin/mypy components app
.venv/bin/pytest --cov --cov-report=term "$@"
