"""Render the kustomization in deploy/kubernetes/ with plain Python and check every resource offline.

Usage: python scripts/check_kubernetes.py [--version 1.30] [--with-optional] [--kubectl] [--chart]

Rendering covers exactly the kustomize features the manifests use (`resources`, `components`, `namespace`,
`labels` without selectors, `images`); any other kustomization field is refused, so the manifests cannot drift
into something this renderer would silently get wrong. Checks:
- every built-in resource against the Kubernetes API schemas (`kubernetes_validate`, strict: no unknown field);
- the ServiceMonitors (a CRD, not in those schemas) field by field;
- the deployment's own rules: api probes (readiness /ready, liveness /health) on the container's port; worker
  termination grace >= RAG_JOB_LEASE_SECONDS; pods non-root with resources requests and limits; every
  secretKeyRef names a key of the Secret table in docs/cluster.md, and no Secret is committed; Services select pods
  of a Deployment and target a named container port; the Ingress and ServiceMonitors point at existing Services.
`--with-optional` also renders the components that are commented out (the HPA); `--kubectl` also compares the
rendering with `kubectl kustomize` when kubectl is installed. `--chart` checks the Helm chart deploy/helm/ragstack
instead (no helm binary: its templates use a small subset of Go templates that `render_chart` implements and that
refuses anything else); with its defaults and release name `ragstack` it must render the kustomization's resources
(plus its own instance/managed-by labels). Exit code 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
CHART_DIR = ROOT / "deploy" / "helm" / "ragstack"
HELM_ONLY_LABELS = ("app.kubernetes.io/instance", "app.kubernetes.io/managed-by")
CLUSTER_DOC = ROOT / "docs" / "cluster.md"
SECRET_NAME = "ragstack-secrets"
LEASE_DEFAULT = 30  # RAG_JOB_LEASE_SECONDS' default (app/settings.py)
READY_PATH, HEALTH_PATH = "/ready", "/health"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume"}
_KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources", "components", "images"}
_COMPONENT_LINE = re.compile(r"^\s*#\s*-\s*(components/\S+)\s*$", re.MULTILINE)

Obj = dict[str, Any]


class RenderError(ValueError):
    """The kustomization uses something this renderer does not implement, or names a missing file."""


def _load_documents(path: Path) -> list[Obj]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    for doc in documents:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise RenderError(f"{path}: every document must be a resource with apiVersion and kind")
    return documents


def _kustomization(directory: Path, kind: str) -> Obj:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise RenderError(f"{directory}: no kustomization.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data.get("kind") != kind:
        raise RenderError(f"{path}: kind {data.get('kind')!r}, expected {kind}")
    unknown = set(data) - _KUSTOMIZATION_FIELDS
    if unknown:
        raise RenderError(f"{path}: fields this renderer does not implement: {sorted(unknown)}")
    return data


def _resources(directory: Path, entries: Iterable[str]) -> list[Obj]:
    objects: list[Obj] = []
    for entry in entries:
        path = directory / entry
        if path.is_dir():
            objects.extend(render(path, kind="Kustomization"))
        elif path.is_file():
            objects.extend(_load_documents(path))
        else:
            raise RenderError(f"{directory / 'kustomization.yaml'}: {entry} does not exist")
    return objects


def optional_components(directory: Path = KUSTOMIZE_DIR) -> list[str]:
    """The components listed as comments (`# - components/x`) in the kustomization: off unless uncommented."""
    return _COMPONENT_LINE.findall((directory / "kustomization.yaml").read_text(encoding="utf-8"))


def render(
    directory: Path = KUSTOMIZE_DIR, *, kind: str = "Kustomization", extra_components: Iterable[str] = ()
) -> list[Obj]:
    """The resources `kubectl kustomize directory` would print, for the features listed in the module docstring."""
    data = _kustomization(directory, kind)
    objects = _resources(directory, data.get("resources", []))
    for component in [*data.get("components", []), *extra_components]:
        objects.extend(render(directory / component, kind="Component"))
    if kind == "Component":
        return objects
    for entry in data.get("labels", []):
        if entry.get("includeSelectors") or entry.get("includeTemplates") or set(entry) - {"pairs", "includeSelectors"}:
            raise RenderError(f"{directory}: only `labels: [{{pairs: ..., includeSelectors: false}}]` is implemented")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
    if (namespace := data.get("namespace")) is not None:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    for image in data.get("images", []):
        for container in _containers(objects):
            if container["image"].split(":", 1)[0] == image["name"]:
                tag = image.get("newTag", container["image"].partition(":")[2] or None)
                container["image"] = image.get("newName", image["name"]) + (f":{tag}" if tag else "")
    return objects


def _containers(objects: Iterable[Obj]) -> list[Obj]:
    return [
        container
        for obj in objects
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}
        for container in obj["spec"]["template"]["spec"].get("containers", [])
    ]


def documented_secret_keys(doc: Path = CLUSTER_DOC) -> set[str]:
    """The keys of `ragstack-secrets` in the table of the "Secrets" section of docs/cluster.md."""
    text = doc.read_text(encoding="utf-8")
    section = re.search(r"^#+ Secrets\n(?P<body>.*?)(?=^#+ |\Z)", text, re.MULTILINE | re.DOTALL)
    if section is None:
        return set()
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", section.group("body"), re.MULTILINE))


def _by_kind(objects: Iterable[Obj], kind: str) -> dict[str, Obj]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def _config_int(objects: Iterable[Obj], name: str, default: int) -> int:
    for config in _by_kind(objects, "ConfigMap").values():
        if name in config.get("data", {}):
            return int(config["data"][name])
    return default


def schema_problems(objects: Iterable[Obj], version: str) -> list[str]:
    """Every built-in resource validated against the API schemas of `version`; ServiceMonitors by hand."""
    import kubernetes_validate

    problems = []
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata'].get('name')}"
        if obj["kind"] == "ServiceMonitor":
            problems.extend(f"{where}: {problem}" for problem in service_monitor_problems(obj))
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(part) for part in error.absolute_path)
            problems.append(f"{where}: {error.message} (at {path or 'top level'})")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{where}: no schema for {obj['apiVersion']} {obj['kind']} in Kubernetes {version}")
    return problems


def service_monitor_problems(obj: Obj) -> list[str]:
    """The fields of a monitoring.coreos.com/v1 ServiceMonitor this deployment relies on, checked by hand."""
    problems = []
    if obj.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append(f"apiVersion {obj.get('apiVersion')!r}, expected monitoring.coreos.com/v1")
    if set(obj) - {"apiVersion", "kind", "metadata", "spec"}:
        problems.append(f"unknown top-level fields {sorted(set(obj) - {'apiVersion', 'kind', 'metadata', 'spec'})}")
    spec = obj.get("spec", {})
    allowed_spec = {"jobLabel", "selector", "endpoints", "namespaceSelector", "targetLabels", "podTargetLabels"}
    if set(spec) - allowed_spec:
        problems.append(f"unknown spec fields {sorted(set(spec) - allowed_spec)}")
    labels = spec.get("selector", {}).get("matchLabels")
    if not isinstance(labels, dict) or not labels or not all(isinstance(v, str) for v in labels.values()):
        problems.append("spec.selector.matchLabels must be a non-empty map of strings")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problems.append("spec.endpoints must be a non-empty list")
        return problems
    allowed_endpoint = {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings", "metricRelabelings"}
    for index, endpoint in enumerate(endpoints):
        if set(endpoint) - allowed_endpoint:
            problems.append(f"endpoints[{index}]: unknown fields {sorted(set(endpoint) - allowed_endpoint)}")
        if not isinstance(endpoint.get("port"), str) or not endpoint["port"]:
            problems.append(f"endpoints[{index}].port must name a Service port")
        if not str(endpoint.get("path", "/metrics")).startswith("/"):
            problems.append(f"endpoints[{index}].path must start with /")
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint and not re.fullmatch(r"(\d+(ms|s|m|h))+", str(endpoint[key])):
                problems.append(f"endpoints[{index}].{key} {endpoint[key]!r} is not a Prometheus duration")
        for relabel in endpoint.get("relabelings", []):
            if set(relabel) - {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}:
                problems.append(f"endpoints[{index}].relabelings: unknown fields in {relabel}")
    return problems


def _port_names(container: Obj) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container.get("ports", []) if "name" in port}


def _probe_problems(where: str, container: Obj, probe_name: str, path: str) -> list[str]:
    probe = container.get(probe_name)
    if probe is None:
        return [f"{where}: no {probe_name}"]
    get = probe.get("httpGet", {})
    problems = []
    if get.get("path") != path:
        problems.append(f"{where}: {probe_name} path {get.get('path')!r}, expected {path}")
    if get.get("port") not in _port_names(container) and get.get("port") not in _port_names(container).values():
        problems.append(f"{where}: {probe_name} port {get.get('port')!r} is not a port of the container")
    return problems


def deployment_problems(objects: list[Obj], secret_keys: set[str]) -> list[str]:
    """The deployment's own rules (module docstring); secret_keys: the documented keys of ragstack-secrets."""
    problems = []
    deployments = _by_kind(objects, "Deployment")
    if set(deployments) != {"ragstack-api", "ragstack-worker"}:
        return [f"expected Deployments ragstack-api and ragstack-worker, found {sorted(deployments)}"]
    api = deployments["ragstack-api"]["spec"]["template"]["spec"]
    (api_container,) = api["containers"]
    problems += _probe_problems("api", api_container, "readinessProbe", READY_PATH)
    problems += _probe_problems("api", api_container, "livenessProbe", HEALTH_PATH)
    if api_container["args"][:2] != ["rag", "serve"]:
        problems.append(f"api: runs {api_container['args']}, expected rag serve")
    else:
        port = api_container["args"][api_container["args"].index("--port") + 1]
        if int(port) != _port_names(api_container).get("http"):
            problems.append(f"api: serves on {port} but its port `http` is {_port_names(api_container).get('http')}")
    worker = deployments["ragstack-worker"]["spec"]["template"]["spec"]
    (worker_container,) = worker["containers"]
    if worker_container["args"] != ["rag", "worker"]:
        problems.append(f"worker: runs {worker_container['args']}, expected rag worker")
    lease = _config_int(objects, "RAG_JOB_LEASE_SECONDS", LEASE_DEFAULT)
    grace = worker.get("terminationGracePeriodSeconds", 30)
    if grace < lease:
        problems.append(f"worker: terminationGracePeriodSeconds {grace} < RAG_JOB_LEASE_SECONDS {lease}")
    metrics_port = _config_int(objects, "RAG_WORKER_METRICS_PORT", 0)
    if _port_names(worker_container).get("metrics") != metrics_port:
        problems.append(f"worker: port `metrics` is not RAG_WORKER_METRICS_PORT ({metrics_port})")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        context = pod.get("securityContext", {})
        if context.get("runAsNonRoot") is not True or not context.get("runAsUser"):
            problems.append(f"{name}: the pod must run as a non-root user (runAsNonRoot, runAsUser)")
        if (
            deployment["spec"]["selector"]["matchLabels"].items()
            - deployment["spec"]["template"]["metadata"]["labels"].items()
        ):
            problems.append(f"{name}: its selector does not match its pod template's labels")
        for container in pod["containers"]:
            resources = container.get("resources", {})
            if not {"cpu", "memory"} <= set(resources.get("requests", {})) & set(resources.get("limits", {})):
                problems.append(f"{name}/{container['name']}: cpu and memory requests and limits are required")
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}/{container['name']}: allowPrivilegeEscalation must be false")
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if "value" in env and re.search(r"(?i)key|password|secret|token|_URL$|CONN_STR", env["name"]):
                    problems.append(f"{name}: {env['name']} has a literal value: use a secretKeyRef")
                if ref is None:
                    continue
                if ref["name"] != SECRET_NAME or ref["key"] not in secret_keys:
                    problems.append(
                        f"{name}: {env['name']} reads {ref['name']}/{ref['key']}, which is not in the documented "
                        f"keys of {SECRET_NAME} (docs/cluster.md, Secrets)"
                    )
    if _by_kind(objects, "Secret"):
        problems.append("a Secret is committed: create it at deploy time (docs/cluster.md, Secrets)")
    problems += _wiring_problems(objects, deployments)
    return problems


def _wiring_problems(objects: list[Obj], deployments: dict[str, Obj]) -> list[str]:
    problems = []
    services = _by_kind(objects, "Service")
    for name, service in services.items():
        selector = service["spec"]["selector"]
        matches = [
            deployment
            for deployment in deployments.values()
            if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        ]
        if len(matches) != 1:
            problems.append(f"Service/{name}: selects {len(matches)} Deployments, expected 1")
            continue
        ports = {p for c in matches[0]["spec"]["template"]["spec"]["containers"] for p in _port_names(c)}
        for port in service["spec"]["ports"]:
            if port.get("targetPort") not in ports:
                problems.append(f"Service/{name}: targetPort {port.get('targetPort')!r} is not a named container port")
    for name, ingress in _by_kind(objects, "Ingress").items():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                target = services.get(backend["name"])
                if target is None or backend["port"].get("name") not in {
                    p.get("name") for p in target["spec"]["ports"]
                }:
                    problems.append(f"Ingress/{name}: backend {backend} is not a port of a Service")
    for name, monitor in _by_kind(objects, "ServiceMonitor").items():
        labels = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services.values() if labels.items() <= s["metadata"].get("labels", {}).items()]
        ports = {p.get("name") for s in selected for p in s["spec"]["ports"]}
        if not selected or any(e["port"] not in ports for e in monitor["spec"]["endpoints"]):
            problems.append(f"ServiceMonitor/{name}: selects no Service with the ports its endpoints name")
    for name, hpa in _by_kind(objects, "HorizontalPodAutoscaler").items():
        if hpa["spec"]["scaleTargetRef"]["name"] not in deployments:
            problems.append(f"HorizontalPodAutoscaler/{name}: scales a Deployment that does not exist")
    return problems


_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)


def render_chart(
    chart: Path = CHART_DIR,
    *,
    release: str = "ragstack",
    namespace: str = "ragstack",
    values: dict[str, Any] | None = None,
) -> list[Obj]:
    """`helm template` of a chart whose templates use only this subset of Go templates (anything else is refused):
    `{{ .Values.a.b }}`, `{{ .Release.Name }}`, `{{ .Release.Namespace }}`, `{{ .Chart.Name }}`, `| quote`,
    `{{ toYaml X | nindent N }}`, `{{ if [not] X }} ... {{ end }}`, `{{/* comments */}}`, and `{{-`/`-}}` trimming.
    `values` are merged over values.yaml (maps key by key, as `--set` / `-f` do)."""
    chart_meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    merged = _merge(yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8")) or {}, values or {})
    scope = {
        "Values": merged,
        "Release": {"Name": release, "Namespace": namespace},
        "Chart": {"Name": chart_meta["name"]},
    }
    objects: list[Obj] = []
    for template in sorted((chart / "templates").glob("*.yaml")):
        text = _execute(template, template.read_text(encoding="utf-8"), scope)
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                if not isinstance(doc, dict) or "kind" not in doc:
                    raise RenderError(f"{template}: renders a document that is not a resource")
                objects.append(doc)
    return objects


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def _execute(path: Path, text: str, scope: dict[str, Any]) -> str:
    pieces: list[str | tuple[str, str]] = []  # text, or (action, source position)
    position = 0
    for match in _ACTION.finditer(text):
        before = text[position : match.start()]
        if match.group(1):
            before = before.rstrip(" \t\r\n")
        if pieces and isinstance(pieces[-1], tuple) and pieces[-1][1] == "-":
            before = before.lstrip(" \t\r\n")
        pieces.append(before)
        pieces.append((match.group(2).strip(), match.group(3)))
        position = match.end()
    after = text[position:]
    if pieces and isinstance(pieces[-1], tuple) and pieces[-1][1] == "-":
        after = after.lstrip(" \t\r\n")
    pieces.append(after)
    out: list[str] = []
    emitting = [True]
    for piece in pieces:
        if isinstance(piece, str):
            if all(emitting):
                out.append(piece)
            continue
        action = piece[0]
        if action.startswith("/*") and action.endswith("*/"):
            continue
        if action.startswith("if "):
            expression = action[3:].strip()
            negate = expression.startswith("not ")
            value = _lookup(path, expression[4:].strip() if negate else expression, scope)
            emitting.append(bool(value) != negate)
        elif action == "end":
            if len(emitting) == 1:
                raise RenderError(f"{path}: `end` without `if`")
            emitting.pop()
        elif all(emitting):
            out.append(_pipeline(path, action, scope))
    if len(emitting) != 1:
        raise RenderError(f"{path}: `if` without `end`")
    return "".join(out)


def _lookup(path: Path, expression: str, scope: dict[str, Any]) -> Any:
    if not re.fullmatch(r"\.(Values|Release|Chart)(\.[A-Za-z_][A-Za-z0-9_]*)+", expression):
        raise RenderError(f"{path}: unsupported template expression {expression!r}")
    value: Any = scope
    for part in expression.split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            raise RenderError(f"{path}: {expression} is not defined (values.yaml)")
        value = value[part]
    return value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise ValueError("a map or list needs toYaml")
    return str(value)


def _pipeline(path: Path, action: str, scope: dict[str, Any]) -> str:
    stages = [stage.strip() for stage in action.split("|")]
    first = stages[0].split()
    try:
        if first[0] == "toYaml" and len(first) == 2:
            value = _lookup(path, first[1], scope)
            text = yaml.safe_dump(value, sort_keys=True, default_flow_style=False).rstrip("\n")
        elif len(first) == 1:
            text = _scalar(_lookup(path, first[0], scope))
        else:
            raise RenderError(f"{path}: unsupported template action {action!r}")
        for stage in stages[1:]:
            words = stage.split()
            if words == ["quote"]:
                text = json.dumps(text)
            elif len(words) == 2 and words[0] in {"nindent", "indent"} and words[1].isdigit():
                indented = "\n".join(" " * int(words[1]) + line for line in text.split("\n"))
                text = ("\n" if words[0] == "nindent" else "") + indented
            else:
                raise RenderError(f"{path}: unsupported template function {stage!r}")
    except ValueError as error:
        raise RenderError(f"{path}: {action!r}: {error}") from error
    return text


def without_helm_labels(objects: Iterable[Obj]) -> list[Obj]:
    """The objects with the labels only the chart sets removed everywhere (metadata, selectors, pod templates)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in HELM_ONLY_LABELS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(obj) for obj in objects]


def chart_problems(chart: Path = CHART_DIR) -> list[str]:
    """Differences between the chart (defaults, release `ragstack`) and the kustomization, without the chart's
    own labels; with autoscaling on, the chart omits the api's replicas (the HPA owns them)."""
    problems = []
    for autoscaling, components in ((False, ()), (True, optional_components())):
        chart_objects = render_chart(chart, values={"autoscaling": {"enabled": autoscaling}})
        ours = {(o["kind"], o["metadata"]["name"]): o for o in without_helm_labels(chart_objects)}
        kustomized = {(o["kind"], o["metadata"]["name"]): o for o in render(extra_components=components)}
        if autoscaling:
            kustomized["Deployment", "ragstack-api"]["spec"].pop("replicas")
        where = "with autoscaling" if autoscaling else "defaults"
        problems += [f"chart ({where}): {k}/{n} only in deploy/kubernetes" for k, n in kustomized.keys() - ours.keys()]
        problems += [f"chart ({where}): {k}/{n} only in the chart" for k, n in ours.keys() - kustomized.keys()]
        problems += [
            f"chart ({where}): {k}/{n} differs from deploy/kubernetes"
            for k, n in ours.keys() & kustomized.keys()
            if ours[k, n] != kustomized[k, n]
        ]
    return problems


def kubectl_problems(kubectl: str, directory: Path = KUSTOMIZE_DIR) -> list[str]:
    """Differences between `kubectl kustomize directory` and `render(directory)` (none: the renderer is faithful)."""
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return [f"kubectl kustomize failed: {result.stderr.strip()}"]
    theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout) if o}
    ours = {(o["kind"], o["metadata"]["name"]): o for o in render(directory)}
    problems = [f"{kind}/{name}: only in kubectl kustomize's output" for kind, name in theirs.keys() - ours.keys()]
    problems += [f"{kind}/{name}: only in this renderer's output" for kind, name in ours.keys() - theirs.keys()]
    problems += [
        f"{kind}/{name}: rendered differently by kubectl kustomize"
        for kind, name in ours.keys() & theirs.keys()
        if ours[kind, name] != theirs[kind, name]
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="1.30", help="Kubernetes version of the schemas (default 1.30)")
    parser.add_argument("--with-optional", action="store_true", help="also render the commented-out components")
    parser.add_argument(
        "--kubectl", action="store_true", help="also compare with `kubectl kustomize` (when kubectl is on PATH)"
    )
    parser.add_argument(
        "--chart",
        action="store_true",
        help="check deploy/helm/ragstack instead: rendered, validated, = the kustomization",
    )
    args = parser.parse_args(argv)
    try:
        if args.chart:
            values = {"autoscaling": {"enabled": True}} if args.with_optional else {}
            objects = render_chart(values=values)
            problems = chart_problems()
        else:
            objects = render(extra_components=optional_components() if args.with_optional else ())
            problems = []
    except RenderError as error:
        print(f"check_kubernetes: {error}")
        return 1
    problems += schema_problems(objects, args.version) + deployment_problems(objects, documented_secret_keys())
    if args.kubectl:
        if (kubectl := shutil.which("kubectl")) is None:
            print("check_kubernetes: kubectl not installed: the comparison with `kubectl kustomize` is skipped")
        else:
            problems += kubectl_problems(kubectl)
            print("check_kubernetes: compared with `kubectl kustomize`")
    for problem in problems:
        print(f"check_kubernetes: {problem}")
    kinds = ", ".join(sorted(f"{obj['kind']}/{obj['metadata']['name']}" for obj in objects))
    print(f"check_kubernetes: {len(objects)} resources ({kinds}): {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
