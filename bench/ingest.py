"""Ingest throughput: pages/s and chunks/s end to end (convert, clean, split, embed, write) for a real PDF.

Usage: .venv/bin/python bench/ingest.py [PDF] [--backend pypdfium2|pypdf]
Default PDF: /usr/share/R/doc/manual/R-exts.pdf (236 pages, Debian r-doc-pdf). Target: >= 15 pages/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

if TYPE_CHECKING:
    from haystack import Pipeline

    from app.composition import Services
    from app.services.ingest import IngestResult

from bench._common import peak_rss_mb, temp_profile

DEFAULT_PDF = "/usr/share/R/doc/manual/R-exts.pdf"


@dataclass
class IngestRun:
    """One timed ingest: the service's result, the wall time of `ingest_path` and the services that ran it."""

    result: IngestResult
    seconds: float
    services: Services
    collection: str

    @property
    def indexing(self) -> Pipeline:
        return self.services.pipelines.indexing.pipeline


def run_ingest(
    pdf: Path, *, edit_indexing=None, pipelines_dir: Path | None = None, collection: str = "bench"
) -> IngestRun:
    """Ingest `pdf` through the shipped indexing pipeline (or the one in `pipelines_dir`) into a fresh data dir.

    The models load in `warm_up()` before the clock starts; the clock covers `IngestService.ingest_path` (checks,
    parsing in the worker process, cleaning, splitting, embedding, writing). Call once per process.
    """
    temp_profile(edit_indexing=edit_indexing, pipelines_dir=pipelines_dir)
    from app.composition import build_services
    from app.settings import Settings

    services = build_services(Settings())
    services.pipelines.indexing.pipeline.warm_up()
    started = time.perf_counter()
    result = services.ingest.ingest_path(pdf, collection=collection)
    elapsed = time.perf_counter() - started
    if result.status != "indexed":
        raise SystemExit(f"ingest failed: {result.error}")
    return IngestRun(result=result, seconds=elapsed, services=services, collection=collection)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pdf", nargs="?", default=DEFAULT_PDF)
    parser.add_argument("--backend", choices=["pypdfium2", "pypdf"], default="pypdfium2")
    parser.add_argument("--max-length", type=int, help="override the embedder's max_length (tokens)")
    parser.add_argument("--batch-size", type=int, help="override the embedder's batch_size")
    args = parser.parse_args()

    def edit(data):
        data["components"]["pdf_converter"]["init_parameters"]["converter"]["init_parameters"]["backend"] = args.backend
        embedder = data["components"]["embedder"]["init_parameters"]
        if args.max_length:
            embedder["max_length"] = args.max_length
        if args.batch_size:
            embedder["batch_size"] = args.batch_size

    run = run_ingest(Path(args.pdf), edit_indexing=edit)
    result, elapsed = run.result, run.seconds
    embedder = run.indexing.get_component("embedder")
    print(
        f"file             {Path(args.pdf).name} (backend {args.backend}, embedder max_length "
        f"{embedder.max_length}, batch_size {embedder.batch_size})"
    )
    print(f"pages            {result.pages}")
    print(f"chunks           {result.chunks}")
    print(f"seconds          {elapsed:.1f}")
    print(f"pages/s          {result.pages / elapsed:.1f}")
    print(f"chunks/s         {result.chunks / elapsed:.1f}")
    print(f"peak RSS MiB     {peak_rss_mb():.0f}")


if __name__ == "__main__":
    main()
