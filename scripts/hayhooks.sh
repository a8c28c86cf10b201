#!/usr/bin/env bash
# Serve the query pipeline with Hayhooks, as shipped, on 127.0.0.1 only:  bash scripts/hayhooks.sh
# Index first with the same data dir (e.g. `.venv/bin/rag ingest /usr/share/R/doc/manual/R-intro.pdf`), then:
#
#   curl -s http://127.0.0.1:1416/query/run -H 'Content-Type: application/json' -d '{
#     "question": "How do I quit R?",
#     "filters": {"field": "meta.collection", "operator": "==", "value": "default"},
#     "top_k": 3, "candidates": 10, "generate": true, "history": []}'
#
# Hayhooks requires every declared input; send null for filters/top_k/candidates to use the YAML defaults, and
# [] or null for history (a follow-up with its conversation goes through the REST API: POST /query, history).
# The reply is keyed by component: result.answer_builder.answers[0].data is the answer (absent when
# generate is false), result.gate.passages the passages, result.gate.relevant the relevance verdict.
#
# Hardening (all through Hayhooks' own settings, no patching):
# - HAYHOOKS_DURABLE_MODE=true fixes the pipeline set at startup: the code-deploy routes (/deploy_files,
#   /deploy-yaml, /undeploy/{name}) are not registered and MCP's deploy/undeploy tools are off. It also makes
#   startup fail when a pipeline does not load (instead of skipping it). YAML pipelines need no Redis.
# - Binds 127.0.0.1 only; CORS allows no origin (HAYHOOKS_CORS_ALLOW_ORIGINS, JSON list, to open it knowingly).
# - Serves only the pipelines named in RAG_HAYHOOKS_PIPELINES (default "query"): indexing.yml's `sources`
#   input takes server-side file paths, so serving it lets any local caller index (then query) any file this
#   user can read. Set RAG_HAYHOOKS_PIPELINES="indexing query" to serve it anyway.
# - The local trace dashboard API is off unless HAYHOOKS_TRACING_ENABLED=true.
#
# Environment: RAG_DATA_DIR (default: data, relative to the current directory, as for `rag`), RAG_MODEL_DIR (default:
# RAG_DATA_DIR/models), RAG_PIPELINES_DIR
# (default: this project's pipelines/; a profile's missing file is the default's, as in app/pipeline_loader.py),
# HAYHOOKS_PORT (default 1416). Hayhooks is the `hayhooks` extra: pip install -e ".[hayhooks]".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HAYHOOKS_BIN="$ROOT/.venv/bin/hayhooks"
[ -x "$HAYHOOKS_BIN" ] || HAYHOOKS_BIN="$(command -v hayhooks || true)"
[ -n "$HAYHOOKS_BIN" ] || { echo 'hayhooks is not installed: pip install -e ".[hayhooks]"' >&2; exit 2; }

RAG_DATA_DIR="$(realpath -m "${RAG_DATA_DIR:-data}")"
RAG_MODEL_DIR="$(realpath -m "${RAG_MODEL_DIR:-$RAG_DATA_DIR/models}")"   # as app/settings.py: the pipelines' cache_dir
RAG_PIPELINES_DIR="$(realpath -e "${RAG_PIPELINES_DIR:-$ROOT/pipelines}")"
SERVED="${RAG_HAYHOOKS_PIPELINES:-query}"
PORT="${HAYHOOKS_PORT:-1416}"

# Hayhooks deploys every *.yml of its pipelines dir: give it a dedicated one holding only the served files.
SERVE_DIR="$RAG_DATA_DIR/hayhooks-pipelines"
mkdir -p "$SERVE_DIR"
find "$SERVE_DIR" -mindepth 1 -maxdepth 1 -name '*.y*ml' -delete
for name in $SERVED; do
  [[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || { echo "invalid pipeline name: $name" >&2; exit 2; }
  source="$RAG_PIPELINES_DIR/$name.yml"
  # pipelines/profiles/<name>/ without this file: the default profile's (pipelines/<name>.yml)
  if [ ! -f "$source" ] && [ "$(basename "$(dirname "$RAG_PIPELINES_DIR")")" = profiles ]; then
    source="$(dirname "$(dirname "$RAG_PIPELINES_DIR")")/$name.yml"
  fi
  ln -sfn "$source" "$SERVE_DIR/$name.yml"
  [ -f "$SERVE_DIR/$name.yml" ] || { echo "no $RAG_PIPELINES_DIR/$name.yml" >&2; exit 2; }
done

export RAG_DATA_DIR RAG_MODEL_DIR
export HAYSTACK_DESERIALIZATION_ALLOWLIST=components
export HAYSTACK_TELEMETRY_ENABLED=False
export HAYHOOKS_DURABLE_MODE=true
export HAYHOOKS_HOST=127.0.0.1
export HAYHOOKS_PORT="$PORT"
export HAYHOOKS_PIPELINES_DIR="$SERVE_DIR"
export HAYHOOKS_CORS_ALLOW_ORIGINS="${HAYHOOKS_CORS_ALLOW_ORIGINS:-[]}"
export HAYHOOKS_TRACING_ENABLED="${HAYHOOKS_TRACING_ENABLED:-false}"
export HAYHOOKS_MONITORING_ENABLED="${HAYHOOKS_MONITORING_ENABLED:-false}"

exec "$HAYHOOKS_BIN" run --host 127.0.0.1 --port "$PORT" --pipelines-dir "$SERVE_DIR"
