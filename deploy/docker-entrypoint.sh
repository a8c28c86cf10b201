#!/bin/sh
# Container entrypoint: point ${RAG_DATA_DIR}/models at the model cache warmed up at build time (outside the data
# volume), so a fresh or bind-mounted /data never reassembles the packaged GGUF again; then run the command.
set -eu
data_dir="${RAG_DATA_DIR:-/data}"
cache="${RAG_MODEL_CACHE:-/opt/ragstack/models}"
mkdir -p "$data_dir"
if [ -d "$cache" ] && [ ! -e "$data_dir/models" ] && [ ! -L "$data_dir/models" ]; then
  ln -s "$cache" "$data_dir/models"
fi
exec "$@"
