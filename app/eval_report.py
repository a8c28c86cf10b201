"""Render evaluation runs: a console table (with deltas for an A/B), JSON, Markdown and PNG plots.

The plots need matplotlib, the `eval` extra; without it the JSON and Markdown reports are still written and a
warning names the extra.
"""

from __future__ import annotations

import json
from pathlib import Path

from haystack import logging
from rich.table import Table

from app.extras import MissingExtraError, extra_required
from app.services.evaluation import PipelineEval

logger = logging.getLogger(__name__)


def metric_names(evals: list[PipelineEval]) -> list[str]:
    """Metrics in first-seen order across the runs."""
    return list(dict.fromkeys(name for e in evals for name in e.metrics))


def console_table(evals: list[PipelineEval]) -> Table:
    """Metrics per pipeline; with two pipelines a `delta` column (second minus first)."""
    table = Table("metric", *(e.name for e in evals), *(["delta"] if len(evals) == 2 else []))
    for name in metric_names(evals):
        values = [e.metrics.get(name) for e in evals]
        cells = ["-" if v is None else f"{v:.3f}" for v in values]
        if len(evals) == 2:
            a, b = values
            cells.append("-" if a is None or b is None else f"{b - a:+.3f}")
        table.add_row(name, *cells)
    for stage in dict.fromkeys(s for e in evals for s in e.latency_ms):
        for pct in ("p50", "p95"):
            values = [e.latency_ms.get(stage, {}).get(pct) for e in evals]
            cells = ["-" if v is None else f"{v:.0f} ms" for v in values]
            if len(evals) == 2:
                a, b = values
                cells.append("-" if a is None or b is None else f"{b - a:+.0f} ms")
            table.add_row(f"latency {stage} {pct}", *cells)
    return table


def split_table(evals: list[PipelineEval]) -> Table:
    """Metrics per pipeline and split, for runs over questions of both splits (tune on dev, report test)."""
    columns = [(e, split) for e in evals for split in e.metrics_by_split]
    table = Table("metric", *(f"{e.name} {split}" for e, split in columns), title="per split")
    names = list(dict.fromkeys(n for e in evals for values in e.metrics_by_split.values() for n in values))
    for name in names:
        values = [e.metrics_by_split[split].get(name) for e, split in columns]
        table.add_row(name, *("-" if v is None else f"{v:.3f}" for v in values))
    return table


def markdown(evals: list[PipelineEval], set_path: Path) -> str:
    """The report as Markdown."""
    heads = [e.name for e in evals] + (["delta"] if len(evals) == 2 else [])
    questions = len(evals[0].results) if evals else 0
    lines = [
        f"# Evaluation of `{set_path}`",
        "",
        f"Questions: {questions} (split: {evals[0].split if evals else 'all'})",
        "",
        "| metric | " + " | ".join(heads) + " |",
        "|---" * (len(heads) + 1) + "|",
    ]
    for name in metric_names(evals):
        values = [e.metrics.get(name) for e in evals]
        cells = ["-" if v is None else f"{v:.3f}" for v in values]
        if len(evals) == 2 and None not in values:
            cells.append(f"{values[1] - values[0]:+.3f}")  # type: ignore[operator]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| latency (ms) | " + " | ".join(e.name for e in evals) + " |", "|---" * (len(evals) + 1) + "|"]
    for stage in dict.fromkeys(s for e in evals for s in e.latency_ms):
        cells = [
            f"{e.latency_ms.get(stage, {}).get('p50', 0):.0f} / {e.latency_ms.get(stage, {}).get('p95', 0):.0f}"
            for e in evals
        ]
        lines.append(f"| {stage} p50 / p95 | " + " | ".join(cells) + " |")
    columns = [(e, split) for e in evals for split in e.metrics_by_split]
    if columns:
        lines += [
            "",
            "Per split (tune on dev, report test):",
            "",
            "| metric | " + " | ".join(f"{e.name} {split}" for e, split in columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        for name in dict.fromkeys(n for e in evals for values in e.metrics_by_split.values() for n in values):
            scores = [e.metrics_by_split[split].get(name) for e, split in columns]
            lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in scores) + " |")
    lines += ["", "Pipelines: " + ", ".join(f"`{e.name}` = `{e.pipelines_dir}`" for e in evals), ""]
    return "\n".join(lines)


def plot(evals: list[PipelineEval], out_dir: Path) -> list[Path]:
    """`metrics.png` (grouped bars per metric) and `latency.png` (histogram of per-question latency)."""
    with extra_required("eval", "Writing the evaluation plots"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    names = metric_names(evals)
    width = 0.8 / len(evals)
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.9), 4.5))
    for i, e in enumerate(evals):
        positions = [x + i * width for x in range(len(names))]
        ax.bar(positions, [e.metrics.get(n, 0.0) for n in names], width=width, label=e.name)
    ax.set_xticks([x + width * (len(evals) - 1) / 2 for x in range(len(names))])
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title("Evaluation metrics per pipeline")
    ax.legend()
    fig.tight_layout()
    metrics_png = out_dir / "metrics.png"
    fig.savefig(metrics_png, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for e in evals:
        stage = "total" if any("total" in r.timings_ms for r in e.results) else "retrieval"
        ax.hist([r.timings_ms.get(stage, 0.0) for r in e.results], bins=20, alpha=0.6, label=f"{e.name} ({stage})")
    ax.set_xlabel("latency per question (ms)")
    ax.set_ylabel("questions")
    ax.set_title("Latency per question")
    ax.legend()
    fig.tight_layout()
    latency_png = out_dir / "latency.png"
    fig.savefig(latency_png, dpi=110)
    plt.close(fig)
    return [metrics_png, latency_png]


def write_reports(evals: list[PipelineEval], set_path: Path, out_dir: Path) -> list[Path]:
    """Write results.json, report.md and, with the `eval` extra installed, metrics.png and latency.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.json"
    split = evals[0].split if evals else "all"
    results.write_text(
        json.dumps({"set": str(set_path), "split": split, "runs": [e.to_dict() for e in evals]}, indent=2)
    )
    report = out_dir / "report.md"
    report.write_text(markdown(evals, set_path))
    try:
        return [results, report, *plot(evals, out_dir)]
    except MissingExtraError as error:
        logger.warning("Evaluation plots not written: {error}", error=str(error))
        return [results, report]
