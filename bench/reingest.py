"""Re-ingest cost: a 236-page PDF with one page changed, against its full ingest (target: <= 10 %).

Usage: flock /work/wt/cpu.lock .venv/bin/python bench/reingest.py [PDF] [--page N]
Default PDF: /usr/share/R/doc/manual/R-exts.pdf (236 pages, Debian r-doc-pdf). The changed version is the same PDF
with text overlaid on page N (pypdf `merge_page` of page 1 of another PDF): every other page's text, the title and
the outline stay the same. Both runs use the default profile (LanceDB) in a fresh data dir; the pipeline is warmed up
before timing. Prints both times, their ratio and how many chunks the embedder received each time.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

DEFAULT_PDF = "/usr/share/R/doc/manual/R-exts.pdf"
OVERLAY_PDF = "/usr/share/R/doc/manual/R-intro.pdf"


def one_page_changed(data: bytes, page: int) -> bytes:
    """The PDF with text of another PDF's first page overlaid on page `page` (1-based); the rest cloned as is."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    overlay = PdfReader(OVERLAY_PDF).pages[0] if Path(OVERLAY_PDF).is_file() else None
    if overlay is None:
        raise SystemExit(f"{OVERLAY_PDF} is missing (apt-get install r-doc-pdf)")
    writer.pages[page - 1].merge_page(overlay)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf", nargs="?", default=DEFAULT_PDF)
    parser.add_argument("--page", type=int, default=120, help="The page changed (1-based).")
    args = parser.parse_args()

    from app.composition import ingest_service, load_pipeline_set
    from app.settings import Settings
    from app.testing.profiles import copy_profile

    data = Path(args.pdf).read_bytes()
    changed = one_page_changed(data, args.page)
    with tempfile.TemporaryDirectory(prefix="rag-reingest-") as root:
        settings = Settings(
            data_dir=Path(root) / "data", pipelines_dir=copy_profile(Path(root) / "pipelines"), rate_limit="off"
        )
        pipelines = load_pipeline_set(settings)
        pipelines.indexing.pipeline.warm_up()
        embedded: list[int] = []
        embedder = pipelines.indexing.pipeline.get_component("embedder")
        run = embedder.run

        def counting_run(documents: list[Any], *a: Any, **k: Any) -> Any:
            embedded.append(len(documents))
            return run(documents, *a, **k)

        embedder.run = counting_run
        ingest = ingest_service(settings, pipelines)
        name = Path(args.pdf).name

        started = time.perf_counter()
        full = ingest.ingest_bytes(data, name, collection="bench")
        full_s = time.perf_counter() - started
        full_embedded = sum(embedded)
        embedded.clear()

        started = time.perf_counter()
        again = ingest.ingest_bytes(changed, name, collection="bench")
        again_s = time.perf_counter() - started
        again_embedded = sum(embedded)

    print(f"PDF: {args.pdf} ({full.pages} pages), page {args.page} changed")
    print(f"full ingest:  {full_s:7.2f} s  status={full.status} chunks={full.chunks} embedded={full_embedded}")
    print(
        f"re-ingest:    {again_s:7.2f} s  status={again.status} version={again.version} chunks={again.chunks} "
        f"embedded={again_embedded} (unchanged {again.chunks_unchanged}, added {again.chunks_added}, "
        f"removed {again.chunks_removed})"
    )
    print(f"ratio:        {100.0 * again_s / full_s:6.1f} % (target <= 10 %)")


if __name__ == "__main__":
    main()
