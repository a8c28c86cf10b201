"""Retrieval ablation on an eval set: BM25 only, dense only, hybrid RRF, chunk sizes, semantic splitter.

Usage: .venv/bin/python scripts/eval_ablation.py [eval/sqlite/questions.jsonl]
Each variant is the shipped `pipelines/` with the YAML edits listed in VARIANTS (written to a temporary folder,
so every variant is a plain pipeline dir you can inspect or copy). Prints a Markdown table (retrieval only).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

Edit = Callable[[dict[str, Any], dict[str, Any]], None]


def _drop_connection(query: dict[str, Any], sender: str) -> None:
    query["connections"] = [
        c for c in query["connections"] if not (c["sender"] == sender and c["receiver"] == "joiner.documents")
    ]


def _chunks(size: int, overlap: int) -> Edit:
    def edit(indexing: dict[str, Any], query: dict[str, Any]) -> None:
        indexing["components"]["splitter"]["init_parameters"].update(split_length=size, split_overlap=overlap)

    return edit


def _semantic(indexing: dict[str, Any], query: dict[str, Any]) -> None:
    indexing["components"]["splitter"] = {
        "type": "components.preprocessors.semantic_document_splitter.SemanticDocumentSplitter",
        "init_parameters": {
            "sentences_per_group": 3,
            "percentile": 0.95,
            "min_length": 200,
            "max_length": 1000,
            "document_embedder": {
                "type": "components.embedders.onnx_document_embedder.OnnxDocumentEmbedder",
                "init_parameters": {"max_length": 128, "batch_size": 8},
            },
        },
    }


VARIANTS: dict[str, Edit] = {
    "hybrid RRF, 1000/200 (default)": lambda i, q: None,
    "BM25 only": lambda i, q: _drop_connection(q, "embedding_retriever.documents"),
    "dense only": lambda i, q: _drop_connection(q, "keyword_retriever.documents"),
    "hybrid, 500/100 chunks": _chunks(500, 100),
    "hybrid, 1500/300 chunks": _chunks(1500, 300),
    "hybrid, semantic splitter": _semantic,
}
COLUMNS = ["doc_hit@1", "doc_hit@5", "doc_mrr", "doc_ndcg@10", "doc_recall@10"]


def _hit1_by_style(eval_set: Path, run: Any) -> dict[str, float]:
    """doc hit@1 per question `style` (an optional eval-set field, e.g. keyword / paraphrase)."""
    styles = {}
    expected = {}
    for line in eval_set.read_text().splitlines():
        if line.strip():
            raw = json.loads(line)
            if raw.get("answerable", True) and raw.get("style"):
                styles[raw["id"]] = raw["style"]
                expected[raw["id"]] = {s["file"] for s in raw["expected_sources"]}
    hits: dict[str, list[bool]] = {}
    for result in run.results:
        if result.id in styles:
            top = result.retrieved[0][0] if result.retrieved else None
            hits.setdefault(styles[result.id], []).append(top in expected[result.id])
    return {style: sum(v) / len(v) for style, v in sorted(hits.items())}


def main() -> None:
    from app.composition import eval_services
    from app.services.evaluation import Evaluator, load_eval_set
    from app.settings import Settings
    from app.testing.profiles import copy_profile

    eval_set = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "eval/sqlite/questions.jsonl")
    questions = load_eval_set(eval_set)
    work = Path(tempfile.mkdtemp(prefix="rag-ablation-"))
    rows = []
    for index, (name, edit) in enumerate(VARIANTS.items()):
        profile = copy_profile(work / f"variant{index}")
        indexing = yaml.safe_load((profile / "indexing.yml").read_text())
        query = yaml.safe_load((profile / "query.yml").read_text())
        edit(indexing, query)
        (profile / "indexing.yml").write_text(yaml.safe_dump(indexing, sort_keys=False))
        (profile / "query.yml").write_text(yaml.safe_dump(query, sort_keys=False))
        evaluator = Evaluator(eval_services(Settings(), profile, work / "data"))
        run = evaluator.run(questions, eval_set.parent / "corpus", name=name, generate=False)
        chunks = evaluator.pipelines.document_store.count_documents_by_filter(
            {"field": "meta.collection", "operator": "==", "value": run.collection}
        )
        rows.append((name, run, chunks))
        print(f"done: {name}", file=sys.stderr)
    print(f"Retrieval on `{eval_set}` ({sum(q.answerable for q in questions)} answerable questions):\n")
    styles = list(_hit1_by_style(eval_set, rows[0][1]))
    print(
        "| variant | chunks | " + " | ".join(COLUMNS) + "".join(f" | hit@1 {s}" for s in styles) + " | retrieval p50 |"
    )
    print("|---" * (len(COLUMNS) + len(styles) + 3) + "|")
    for name, run, chunks in rows:
        cells = " | ".join(f"{run.metrics[c]:.3f}" for c in COLUMNS)
        by_style = "".join(f" | {v:.3f}" for v in _hit1_by_style(eval_set, run).values())
        print(f"| {name} | {chunks} | {cells}{by_style} | {run.latency_ms['retrieval']['p50']:.0f} ms |")


if __name__ == "__main__":
    main()
