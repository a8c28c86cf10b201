"""The Kubernetes manifests (deploy/kubernetes/), validated offline by scripts/check_kubernetes.py.

Rendered with plain Python (compared with `kubectl kustomize` when kubectl is installed), validated against the
Kubernetes API schemas (`kubernetes_validate`, strict), the ServiceMonitor CRD by hand, and the deployment's own
rules; each rule is also shown to catch a broken manifest.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest

from app.api.routes.health import router as health_router
from app.settings import PROJECT_ROOT, Settings
from app.testing.scripts import load_script

KUSTOMIZE_DIR = PROJECT_ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.30", kubernetes_validate.latest_version())


@pytest.fixture(scope="module")
def check() -> ModuleType:
    return load_script("check_kubernetes")


@pytest.fixture
def objects(check) -> list[dict[str, Any]]:
    return check.render(extra_components=check.optional_components())


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name)


def _pod(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return _find(objects, "Deployment", name)["spec"]["template"]["spec"]


def test_the_kustomization_renders_the_expected_resources(check):
    objects = check.render()
    assert sorted((obj["kind"], obj["metadata"]["name"]) for obj in objects) == [
        ("ConfigMap", "ragstack-config"),
        ("Deployment", "ragstack-api"),
        ("Deployment", "ragstack-worker"),
        ("Ingress", "ragstack"),
        ("PodDisruptionBudget", "ragstack-api"),
        ("Service", "ragstack-api"),
        ("Service", "ragstack-worker"),
        ("ServiceMonitor", "ragstack-api"),
        ("ServiceMonitor", "ragstack-worker"),
    ]
    assert check.optional_components() == ["components/autoscaling"]
    for obj in objects:
        assert obj["metadata"]["namespace"] == "ragstack"
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ragstack"
    assert {c["image"] for name in ("ragstack-api", "ragstack-worker") for c in _pod(objects, name)["containers"]} == {
        "ragstack:latest"
    }


def test_the_python_rendering_equals_kubectl_kustomize(check, monkeypatch):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (its `kubectl kustomize` renders offline)")
    assert check.kubectl_problems(kubectl) == []
    # a renderer that forgets the namespace is caught
    render = check.render

    def without_namespace(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        objects = render(*args, **kwargs)
        if kwargs.get("kind", "Kustomization") == "Kustomization":  # not for the components it renders first
            del objects[0]["metadata"]["namespace"]
        return objects

    monkeypatch.setattr(check, "render", without_namespace)
    assert check.kubectl_problems(kubectl) == ["ConfigMap/ragstack-config: rendered differently by kubectl kustomize"]


def test_the_renderer_refuses_kustomize_features_it_does_not_implement(check, tmp_path):
    shutil.copytree(KUSTOMIZE_DIR, tmp_path / "k")
    path = tmp_path / "k" / "kustomization.yaml"
    path.write_text(path.read_text() + "patches:\n  - path: extra.yaml\n")
    with pytest.raises(check.RenderError, match="patches"):
        check.render(tmp_path / "k")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_is_valid_against_the_kubernetes_schemas(check, objects, version):
    assert check.schema_problems(objects, version) == []
    assert {obj["kind"] for obj in objects} >= {"HorizontalPodAutoscaler", "ServiceMonitor", "Ingress"}


def test_schema_validation_catches_unknown_fields_and_wrong_types(check, objects):
    broken = copy.deepcopy(objects)
    _pod(broken, "ragstack-api")["containers"][0]["readinessprobe"] = {}  # a typo: strict schemas refuse it
    _find(broken, "Service", "ragstack-api")["spec"]["ports"][0]["port"] = "eighty"
    problems = check.schema_problems(broken, "1.30")
    assert any("Deployment/ragstack-api" in p and "readinessprobe" in p for p in problems), problems
    assert any("Service/ragstack-api" in p for p in problems), problems


def test_service_monitors_are_checked_by_hand(check, objects):
    monitor = _find(objects, "ServiceMonitor", "ragstack-worker")
    assert check.service_monitor_problems(monitor) == []
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    bad = copy.deepcopy(monitor)
    bad["spec"]["endpoints"][0]["interval"] = "15 seconds"
    bad["spec"]["endpoints"][0]["targetPort"] = 9100
    bad["spec"]["selectr"] = {}
    problems = check.service_monitor_problems(bad)
    assert len(problems) == 3, problems
    assert check.service_monitor_problems({**monitor, "spec": {**monitor["spec"], "endpoints": []}})


def test_the_deployment_rules_hold(check, objects):
    assert check.deployment_problems(objects, check.documented_secret_keys()) == []


def test_api_probes_are_routes_the_app_serves(check, objects):
    paths = {route.path for route in health_router.routes}
    assert {check.READY_PATH, check.HEALTH_PATH} <= paths
    (api,) = _pod(objects, "ragstack-api")["containers"]
    assert api["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert {"name": "http", "containerPort": 8000} in api["ports"]
    for probe, path in (("readinessProbe", "/health"), ("livenessProbe", "/ready")):
        broken = copy.deepcopy(objects)
        _pod(broken, "ragstack-api")["containers"][0][probe]["httpGet"]["path"] = path
        assert any(probe in p for p in check.deployment_problems(broken, check.documented_secret_keys()))
    broken = copy.deepcopy(objects)
    _pod(broken, "ragstack-api")["containers"][0]["readinessProbe"]["httpGet"]["port"] = "web"
    assert any("is not a port" in p for p in check.deployment_problems(broken, check.documented_secret_keys()))


def test_the_worker_outlives_its_lease(check, objects):
    config = _find(objects, "ConfigMap", "ragstack-config")["data"]
    lease = int(config["RAG_JOB_LEASE_SECONDS"])
    assert lease >= Settings.model_fields["job_lease_seconds"].default
    assert _pod(objects, "ragstack-worker")["terminationGracePeriodSeconds"] >= lease
    broken = copy.deepcopy(objects)
    _find(broken, "ConfigMap", "ragstack-config")["data"]["RAG_JOB_LEASE_SECONDS"] = "60"
    problems = check.deployment_problems(broken, check.documented_secret_keys())
    assert problems == ["worker: terminationGracePeriodSeconds 45 < RAG_JOB_LEASE_SECONDS 60"]


def test_cluster_settings_are_real_settings(objects):
    config = _find(objects, "ConfigMap", "ragstack-config")["data"]
    fields = {f"RAG_{name.upper()}" for name in Settings.model_fields}
    assert {key for key in config if key.startswith("RAG_")} <= fields
    assert config["RAG_CLUSTER"] == "true" and config["RAG_JOB_QUEUE"] == "redis"
    assert config["RAG_PROFILE"] == "pgvector" and config["RAG_BLOB_URL"].startswith("s3://")
    env = {
        e["name"] for name in ("ragstack-api", "ragstack-worker") for e in _pod(objects, name)["containers"][0]["env"]
    }
    assert {"RAG_STATE_URL", "PG_CONN_STR", "RAG_REDIS_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env
    assert {e for e in env if e.startswith("RAG_")} <= fields


def test_every_secret_named_is_documented_and_none_is_committed(check, objects):
    documented = check.documented_secret_keys()
    used = {
        env["valueFrom"]["secretKeyRef"]["key"]
        for name in ("ragstack-api", "ragstack-worker")
        for env in _pod(objects, name)["containers"][0]["env"]
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert used == documented == {"postgres-url", "redis-url", "s3-access-key-id", "s3-secret-access-key", "admin-key"}
    # the admin key reaches the api only
    worker_env = {e["name"] for e in _pod(objects, "ragstack-worker")["containers"][0]["env"]}
    assert "RAG_ADMIN_KEY" not in worker_env
    broken = copy.deepcopy(objects)
    _pod(broken, "ragstack-worker")["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["key"] = "pg-password"
    broken.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ragstack-secrets"}, "data": {}})
    _pod(broken, "ragstack-api")["containers"][0]["env"].append({"name": "RAG_ADMIN_KEY", "value": "rag_x"})
    problems = check.deployment_problems(broken, documented)
    assert any("pg-password" in p for p in problems)
    assert any("a Secret is committed" in p for p in problems)
    assert any("RAG_ADMIN_KEY has a literal value" in p for p in problems)


def test_pods_run_as_non_root_with_resources(check, objects):
    for name in ("ragstack-api", "ragstack-worker"):
        pod = _pod(objects, name)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"/data", "/tmp"} <= {mount["mountPath"] for mount in container["volumeMounts"]}
    broken = copy.deepcopy(objects)
    del _pod(broken, "ragstack-worker")["securityContext"]["runAsNonRoot"]
    del _pod(broken, "ragstack-api")["containers"][0]["resources"]["limits"]
    problems = check.deployment_problems(broken, check.documented_secret_keys())
    assert any("ragstack-worker: the pod must run as a non-root user" in p for p in problems)
    assert any("ragstack-api/api: cpu and memory requests and limits" in p for p in problems)


def test_services_ingress_and_monitors_are_wired_to_existing_ports(check, objects):
    ingress = _find(objects, "Ingress", "ragstack")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "ragstack-api", "port": {"name": "http"}}
    assert _find(objects, "Service", "ragstack-worker")["spec"]["clusterIP"] == "None"
    assert _find(objects, "HorizontalPodAutoscaler", "ragstack-api")["spec"]["minReplicas"] >= 2
    broken = copy.deepcopy(objects)
    _find(broken, "Service", "ragstack-worker")["spec"]["ports"][0]["name"] = "prom"
    _find(broken, "Service", "ragstack-api")["spec"]["selector"]["app.kubernetes.io/component"] = "web"
    problems = check.deployment_problems(broken, check.documented_secret_keys())
    assert any(p.startswith("ServiceMonitor/ragstack-worker") for p in problems)
    assert any(p.startswith("Service/ragstack-api: selects 0") for p in problems)


def test_the_script_exits_zero_on_the_shipped_manifests(check, capsys):
    assert check.main(["--with-optional"]) == 0
    assert "0 problems" in capsys.readouterr().out


def test_the_documented_secret_table_is_parsed(check, tmp_path: Path):
    doc = tmp_path / "cluster.md"
    doc.write_text("# X\n## Secrets\n\n| key | read as |\n|---|---|\n| `a-b` | X |\n\n## Next\n| `c` | Y |\n")
    assert check.documented_secret_keys(doc) == {"a-b"}
