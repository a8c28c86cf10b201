"""The Helm chart deploy/helm/ragstack, rendered without a helm binary by scripts/check_kubernetes.py.

Its templates use a small subset of Go templates (values substitution, `quote`, `toYaml | nindent`, `if [not]`);
the renderer implements exactly that and refuses anything else. With its defaults the chart must produce the
resources of deploy/kubernetes/ (plus its own instance/managed-by labels), and pass the same schema and deployment
checks.
"""

from __future__ import annotations

import shutil
from types import ModuleType
from typing import Any

import pytest

from app.settings import PROJECT_ROOT
from app.testing.scripts import load_script

CHART = PROJECT_ROOT / "deploy" / "helm" / "ragstack"


@pytest.fixture(scope="module")
def check() -> ModuleType:
    return load_script("check_kubernetes")


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


def test_the_chart_renders_the_kustomization(check):
    assert check.chart_problems() == []


@pytest.mark.parametrize("autoscaling", [False, True])
def test_the_rendered_chart_passes_the_schema_and_deployment_checks(check, autoscaling):
    objects = check.render_chart(values={"autoscaling": {"enabled": autoscaling}})
    assert check.schema_problems(objects, "1.30") == []
    assert check.deployment_problems(objects, check.documented_secret_keys()) == []
    assert (_find(objects, "HorizontalPodAutoscaler", "ragstack-api") is not None) is autoscaling
    # the HPA owns the api's replica count: the Deployment does not set it then
    assert ("replicas" in _find(objects, "Deployment", "ragstack-api")["spec"]) is not autoscaling


def test_values_reach_the_resources(check):
    objects = check.render_chart(
        release="rag",
        namespace="search",
        values={
            "image": {"repository": "registry.example.com/ragstack", "tag": "1.2.3"},
            "worker": {"replicas": 5},
            "existingSecret": "prod-secrets",
            "ingress": {"host": "rag.example.org"},
            "serviceMonitor": {"enabled": False},
        },
    )
    assert {o["metadata"]["namespace"] for o in objects} == {"search"}
    worker = _find(objects, "Deployment", "rag-worker")
    assert worker["spec"]["replicas"] == 5
    assert worker["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "rag"
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/ragstack:1.2.3"
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]} == {"prod-secrets"}
    assert container["envFrom"] == [{"configMapRef": {"name": "rag-config"}}]
    assert _find(objects, "Deployment", "rag-api")["spec"]["replicas"] == 2  # values merge key by key
    assert _find(objects, "Ingress", "rag")["spec"]["rules"][0]["host"] == "rag.example.org"
    assert not [o for o in objects if o["kind"] == "ServiceMonitor"]


def test_a_grace_below_the_lease_is_caught(check):
    objects = check.render_chart(values={"worker": {"terminationGracePeriodSeconds": 20}})
    assert check.deployment_problems(objects, check.documented_secret_keys()) == [
        "worker: terminationGracePeriodSeconds 20 < RAG_JOB_LEASE_SECONDS 30"
    ]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('{{ include "ragstack.labels" . }}', "unsupported template action"),
        ("{{ .Values.nothing.here }}", "is not defined"),
        ("{{ range .Values.config }}x{{ end }}", "unsupported template"),
        ("{{ .Values.image.tag | upper }}", "unsupported template function"),
        ("{{ if .Values.ingress.enabled }}x", "`if` without `end`"),
        ("{{ .Values.api.resources }}", "needs toYaml"),
    ],
)
def test_the_renderer_refuses_what_it_does_not_implement(check, tmp_path, template, message):
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "extra.yaml").write_text(f"kind: ConfigMap\nvalue: {template}\n")
    with pytest.raises(check.RenderError, match=message):
        check.render_chart(chart)


def test_a_chart_that_drifts_from_the_kustomization_is_reported(check, tmp_path):
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    worker = chart / "templates" / "worker.yaml"
    worker.write_text(worker.read_text().replace("emptyDir: {sizeLimit: 4Gi}", "emptyDir: {sizeLimit: 8Gi}"))
    assert check.chart_problems(chart) == [
        "chart (defaults): Deployment/ragstack-worker differs from deploy/kubernetes",
        "chart (with autoscaling): Deployment/ragstack-worker differs from deploy/kubernetes",
    ]


def test_trimming_and_conditionals_follow_go_templates(check, tmp_path):
    template = tmp_path / "t.yaml"
    scope = {"Values": {"on": True, "off": False, "m": {"a": 1}}, "Release": {"Name": "r"}, "Chart": {"Name": "c"}}
    text = "a:\n  {{- if .Values.on }}\n  b: 1\n  {{- end }}\n  {{- if not .Values.on }}\n  c: 2\n  {{- end }}\nd: x"
    assert check._execute(template, text, scope) == "a:\n  b: 1\nd: x"
    assert check._execute(template, "m:\n  {{- toYaml .Values.m | nindent 2 }}", scope) == "m:\n  a: 1"
    assert check._execute(template, "{{/* note */}}n: {{ .Release.Name | quote }}", scope) == 'n: "r"'
    assert check._execute(template, "x: {{ .Values.off }}", scope) == "x: false"
