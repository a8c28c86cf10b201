"""Check the provisioned Grafana dashboards against the metrics the app exposes (app/metrics.py).

Usage: python scripts/check_dashboard.py [dashboard.json ...]   (default: deploy/grafana/dashboards/*.json)

Checks: valid JSON; Grafana dashboard shape (uid, title, `panels` with unique integer ids, every non-row panel has
`targets` with a non-empty `expr`); every datasource uid is the one provisioned in
deploy/grafana/provisioning/datasources/; every metric name in any expr is one the app exposes (histogram series
`_bucket`/`_sum`/`_count` are reduced to the histogram's name). Exit code 1 with one line per problem.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS_DIR = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCES_DIR = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"

# The names app/metrics.py registers: counters with their `_total`, histograms by their base name.
COUNTERS = {
    "rag_http_requests_total",
    "rag_uploads_total",
    "rag_chunks_indexed_total",
    "rag_llm_tokens_total",
    "rag_errors_total",
}
HISTOGRAMS = {
    "rag_http_request_duration_seconds",
    "rag_ingest_duration_seconds",
    "rag_ingest_page_duration_seconds",
    "rag_query_duration_seconds",
    "rag_time_to_first_token_seconds",
}
GAUGES = {"rag_collections", "rag_indexed_chunks"}
KNOWN_METRICS = COUNTERS | HISTOGRAMS | GAUGES

_METRIC = re.compile(r"(?<![A-Za-z0-9_:])(rag_[A-Za-z0-9_]+)")
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def base_name(series: str) -> str:
    """`rag_x_seconds_bucket` -> `rag_x_seconds` (`_bucket`/`_sum`/`_count` stripped); other names unchanged."""
    return _HISTOGRAM_SUFFIX.sub("", series)


def names_in_expr(expr: str) -> set[str]:
    """Metric names (reduced to their base name) referenced by one PromQL expression; label values are ignored."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return {base_name(name) for name in _METRIC.findall(without_strings)}


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels") or [])


def metric_names(dashboard: dict[str, Any]) -> set[str]:
    """All metric names (base names) referenced by any panel target of a dashboard."""
    names: set[str] = set()
    for panel in iter_panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            names |= names_in_expr(str(target.get("expr", "")))
    return names


def provisioned_uids(directory: Path = DATASOURCES_DIR) -> set[str]:
    uids: set[str] = set()
    for path in sorted(directory.glob("*.y*ml")):
        for source in (yaml.safe_load(path.read_text()) or {}).get("datasources") or []:
            if source.get("uid"):
                uids.add(source["uid"])
    return uids


def _datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            yield str(source["uid"])
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_uids(item)


def check_dashboard(path: Path, uids: set[str]) -> list[str]:
    """Problems found in one dashboard file (empty when it is fine)."""
    try:
        dashboard = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return [f"{path}: not valid JSON: {error}"]
    problems: list[str] = []
    if not isinstance(dashboard, dict):
        return [f"{path}: top level is not an object"]
    for key in ("uid", "title"):
        if not isinstance(dashboard.get(key), str) or not dashboard[key]:
            problems.append(f"{path}: missing dashboard {key}")
    panels = dashboard.get("panels")
    if not isinstance(panels, list) or not panels:
        return [*problems, f"{path}: no panels"]
    seen: set[int] = set()
    for panel in iter_panels(panels):
        title = panel.get("title", "?")
        panel_id = panel.get("id")
        if not isinstance(panel_id, int):
            problems.append(f"{path}: panel {title!r} has no integer id")
        elif panel_id in seen:
            problems.append(f"{path}: duplicate panel id {panel_id} ({title!r})")
        else:
            seen.add(panel_id)
        if "gridPos" not in panel:
            problems.append(f"{path}: panel {title!r} has no gridPos")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            problems.append(f"{path}: panel {title!r} has no targets")
            continue
        for target in targets:
            expr = target.get("expr") if isinstance(target, dict) else None
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{path}: panel {title!r} has a target without expr")
                continue
            unknown = names_in_expr(expr) - KNOWN_METRICS
            if unknown:
                problems.append(f"{path}: panel {title!r} references unknown metrics {sorted(unknown)}: {expr}")
            if not names_in_expr(expr):
                problems.append(f"{path}: panel {title!r} expr references no rag_* metric: {expr}")
    for uid in sorted(set(_datasource_uids(dashboard))):
        if uid not in uids:
            problems.append(f"{path}: datasource uid {uid!r} is not provisioned (provisioned: {sorted(uids)})")
    return problems


def main(argv: list[str]) -> int:
    paths = [Path(arg) for arg in argv] or sorted(DASHBOARDS_DIR.glob("*.json"))
    if not paths:
        print(f"no dashboards in {DASHBOARDS_DIR}")
        return 1
    uids = provisioned_uids()
    if not uids:
        print(f"no datasource uid provisioned in {DATASOURCES_DIR}")
        return 1
    problems = [problem for path in paths for problem in check_dashboard(path, uids)]
    for problem in problems:
        print(problem)
    if problems:
        return 1
    for path in paths:
        names = metric_names(json.loads(path.read_text()))
        print(
            f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: ok, {len(names)} metrics: "
            + ", ".join(sorted(names))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
