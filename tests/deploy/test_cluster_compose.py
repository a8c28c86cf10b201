"""The cluster compose file (deploy/cluster/compose.yml): what makes it a cluster, checked without a Docker engine.

The file is read as YAML (anchors and merge keys resolved by PyYAML), and, when the Compose binary that
scripts/check_deploy.sh installs is present, through `docker-compose config` (interpolation and the Compose schema).
Its Prometheus config goes through `promtool check config` (Debian's prometheus, scripts/apt-packages-deploy.txt).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import PROJECT_ROOT, Settings

CLUSTER = PROJECT_ROOT / "deploy" / "cluster"
COMPOSE = CLUSTER / "compose.yml"
SECRETS = ("RAG_ADMIN_KEY", "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MINIO_APP_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
_DEFAULT = re.compile(r"^\$\{(?P<name>[A-Z_][A-Z0-9_]*):-(?P<default>[^}]*)\}$")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _default(value: str) -> str:
    """`${VAR:-default}` -> default; anything else as written."""
    match = _DEFAULT.match(str(value))
    return match.group("default") if match else str(value)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"unexpected duration {duration!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def _compose_binary() -> str | None:
    local = PROJECT_ROOT / ".deploy-tools" / "bin" / "docker-compose"
    return str(local) if local.is_file() else shutil.which("docker-compose")


def _prometheus_jobs() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((CLUSTER / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_the_api_publishes_no_host_port_so_it_scales():
    api = _services()["api"]
    assert "ports" not in api, "a fixed host port makes `--scale api=N` fail: publish the balancer instead"
    assert "container_name" not in api and "hostname" not in api
    assert api["expose"] == ["8000"]
    assert "--port" in api["command"] and api["command"][api["command"].index("--port") + 1] == "8000"
    assert int(_default(api["deploy"]["replicas"])) >= 2


def test_workers_scale_and_outlive_their_lease_on_sigterm():
    services = _services()
    worker = services["worker"]
    assert worker["command"] == ["rag", "worker"]
    assert "ports" not in worker and "container_name" not in worker
    assert int(_default(worker["deploy"]["replicas"])) >= 2
    env = worker["environment"]
    assert env["RAG_JOB_QUEUE"] == "redis"
    lease = int(_default(env["RAG_JOB_LEASE_SECONDS"]))
    assert lease >= Settings.model_fields["job_lease_seconds"].default
    assert _seconds(worker["stop_grace_period"]) >= lease
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert worker["expose"] == [env["RAG_WORKER_METRICS_PORT"]]


def test_only_the_balancer_faces_clients_and_it_follows_the_replicas():
    services = _services()
    published = {name for name, service in services.items() if service.get("ports")}
    # Prometheus and Grafana are published on loopback only
    assert published == {"lb", "prometheus", "grafana"}
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name
    assert services["lb"]["ports"] == ["${RAG_PUBLISH_PORT:-8000}:8080"]
    nginx = (CLUSTER / "nginx.conf").read_text()
    assert "listen 8080;" in nginx
    # a variable in proxy_pass makes nginx re-resolve `api` (Docker's DNS) instead of pinning the first replicas
    assert re.search(r"resolver 127\.0\.0\.11 valid=\d+s", nginx)
    assert "set $api_upstream http://api:8000;" in nginx and "proxy_pass $api_upstream;" in nginx
    assert "proxy_buffering off;" in nginx  # streamed answers
    body = re.search(r"client_max_body_size (\d+)m;", nginx)
    assert body and int(body.group(1)) >= Settings.model_fields["max_request_mb"].default


def test_api_and_workers_run_in_cluster_mode_on_shared_services_only():
    services = _services()
    fields = {f"RAG_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "worker"):
        service = services[name]
        env = service["environment"]
        assert env["RAG_CLUSTER"] == "true"
        assert _default(env["RAG_PROFILE"]) == "pgvector"
        assert env["RAG_STATE_URL"] == env["PG_CONN_STR"]
        assert env["PG_CONN_STR"].endswith("@postgres:5432/${POSTGRES_DB:-rag}")
        assert env["RAG_BLOB_URL"].startswith("s3://")
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert env["RAG_JOB_QUEUE"] == "redis" and env["RAG_REDIS_URL"] == "redis://redis:6379/0"
        unknown = {key for key in env if key.startswith("RAG_")} - fields
        assert not unknown, f"{name}: not settings of app/settings.py: {unknown}"
        assert "volumes" not in service, f"{name} shares no volume: every replica's /data is its own"
        assert "network_mode" not in service
        assert service["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    # the admin key reaches the api only, from the operator's .env, never written in the file
    assert services["api"]["environment"]["RAG_ADMIN_KEY"].startswith("${RAG_ADMIN_KEY:?")
    assert "RAG_ADMIN_KEY" not in services["worker"]["environment"]
    assert "/ready" in " ".join(services["api"]["healthcheck"]["test"])


def test_no_secret_is_written_in_the_files():
    text = COMPOSE.read_text()
    for name in SECRETS:
        assert f"${{{name}:?" in text, name
    example = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in (CLUSTER / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for name in SECRETS:
        assert example[name] == "", f"env.example must leave {name} empty (compose then refuses to start)"
    assert (CLUSTER / ".gitignore").read_text().split() == [".env", "rag.env"]


def test_every_server_is_a_service_of_its_own_reachable_by_name():
    services = _services()
    assert not [name for name, service in services.items() if "network_mode" in service]
    for name in ("postgres", "redis", "minio", "prometheus", "weaviate", "ollama"):
        assert name in services
    assert services["weaviate"]["profiles"] == ["weaviate"] and services["ollama"]["profiles"] == ["ollama"]
    env = services["worker"]["environment"]
    assert _default(env["WEAVIATE_URL"]) == "http://weaviate:8080"
    assert _default(env["OLLAMA_URL"]) == "http://ollama:11434"


def test_minio_init_creates_the_bucket_and_an_application_user():
    services = _services()
    init = services["minio-init"]
    assert init["restart"] == "no" and init["entrypoint"] == ["/bin/sh", "/minio-init.sh"]
    script = (CLUSTER / "minio-init.sh").read_text()
    assert 'mc mb --ignore-existing "local/$RAG_BUCKET"' in script
    assert 'mc admin user add local "$MINIO_APP_USER" "$MINIO_APP_PASSWORD"' in script
    bucket = _default(init["environment"]["RAG_BUCKET"])
    assert services["worker"]["environment"]["RAG_BLOB_URL"] == f"s3://${{RAG_BUCKET:-{bucket}}}/uploads"
    # the api and workers hold the application account, not MinIO's root
    assert services["api"]["environment"]["AWS_ACCESS_KEY_ID"] == "${MINIO_APP_USER:-ragstack}"
    assert subprocess.run(["sh", "-n", str(CLUSTER / "minio-init.sh")], check=False).returncode == 0


def test_prometheus_discovers_every_api_replica_and_worker():
    services = _services()
    jobs = _prometheus_jobs()
    targets = {}
    for job in ("ragstack-api", "ragstack-worker"):
        (sd,) = jobs[job]["dns_sd_configs"]
        assert "static_configs" not in jobs[job]
        assert sd["type"] == "A"
        (name,) = sd["names"]
        targets[name] = sd["port"]
    assert targets == {"api": 8000, "worker": int(services["worker"]["environment"]["RAG_WORKER_METRICS_PORT"])}
    mount = "./prometheus.yml:/etc/prometheus/prometheus.yml:ro"
    assert mount in services["prometheus"]["volumes"]


def test_promtool_accepts_the_cluster_prometheus_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: bash scripts/apt-install.sh scripts/apt-packages-deploy.txt")
    result = subprocess.run(
        [promtool, "check", "config", str(CLUSTER / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    binary = _compose_binary()
    if binary is None:
        pytest.skip("docker-compose (Compose v2) not installed: bash scripts/check_deploy.sh installs it")
    env = {**os.environ, **{name: "dummy-secret" for name in SECRETS}}
    command = [binary, "-f", str(COMPOSE), "--env-file", str(CLUSTER / "env.example"), "--profile", "*"]
    result = subprocess.run([*command, "config", "--format", "json"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_docker_compose_config_accepts_the_file_and_keeps_its_properties(compose_config):
    services = compose_config["services"]
    assert services["api"].get("ports") is None
    assert services["api"]["deploy"]["replicas"] == 2 and services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["environment"]["RAG_JOB_LEASE_SECONDS"] == "30"
    assert services["api"]["environment"]["RAG_ADMIN_KEY"] == "dummy-secret"
    assert services["lb"]["ports"][0]["published"] == "8000"
    assert services["api"]["build"]["context"] == str(PROJECT_ROOT)


def test_docker_compose_refuses_to_start_without_the_admin_key():
    binary = _compose_binary()
    if binary is None:
        pytest.skip("docker-compose (Compose v2) not installed: bash scripts/check_deploy.sh installs it")
    env = {**{k: v for k, v in os.environ.items() if k not in SECRETS}, **{name: "x" for name in SECRETS[1:]}}
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "--env-file", str(CLUSTER / "env.example"), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode != 0 and "RAG_ADMIN_KEY" in result.stderr


def test_the_image_has_the_cluster_extra():
    line = next(
        line for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines() if line.startswith("ARG RAG_EXTRAS=")
    )
    assert "cluster" in line.split("=", 1)[1].strip('"').split(",")


def test_paths_the_file_mounts_exist():
    for service in _services().values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (CLUSTER / source).exists(), source
    assert Path(CLUSTER / _services()["api"]["build"]["context"]).resolve() == PROJECT_ROOT.resolve()
