#!/usr/bin/env bash
# The test command: installs what the tests need (the users' install with every extra, since the tests cover
# every backend, plus the dev tools and the test corpus), then lint, type-check and the whole test suite. Used
# verbatim by .ci/run. Line coverage is opt-in (`bash scripts/test.sh --cov --cov-report=term`; docs/operations.md#ci).
set -euo pipefail
cd "$(dirname "$0")/.."
export HAYSTACK_TELEMETRY_ENABLED=False
RAG_EXTRAS=dev,all bash scripts/install.sh
bash scripts/apt-install.sh scripts/apt-packages-test.txt scripts/apt-packages-deploy.txt  # + prometheus/promtool
bash scripts/fetch_test_corpus.sh
bash scripts/build_eval_corpus.sh
bash scripts/postgres.sh >/dev/null   # PostgreSQL 15 + pgvector on 127.0.0.1:5432 (pgvector profile tests)
.venv/bin/ruff check components app tests bench scripts
.venv/bin/ruff format --check components app tests bench scripts
.venv/bin/mypy components app
.venv/bin/python scripts/gen_config_docs.py --check   # docs/configuration.md and .env.example match app/settings.py
bash scripts/check_deploy.sh   # hadolint, compose config, promtool, dashboard metrics, Dockerfile pip steps in a fresh venv
# quality gates on the test splits (docs/evaluation.md#quality-gate): SQLite retrieval (eval/gate.json), then the
# Debian Reference end to end with the local model: answers, refusals, citations (eval/debian-reference/gate.json).
# The gnuplot manual's end-to-end gate (eval/gnuplot/gate.json) is run by hand after these two (same page).
.venv/bin/rag eval eval/sqlite/questions.jsonl --gate eval/gate.json --out .eval-ci/sqlite --data-dir .eval-ci/data
.venv/bin/rag eval eval/debian-reference/questions.jsonl --gate eval/debian-reference/gate.json --out .eval-ci/debian-reference \
    --data-dir .eval-ci/data
.venv/bin/pytest "$@"
