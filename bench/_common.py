"""Shared helpers for the benchmark scripts (not part of the product)."""

from __future__ import annotations

import os
import resource
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def temp_profile(
    edit_indexing=None, edit_query=None, source: str = "default", pipelines_dir: Path | None = None
) -> tuple[Path, Path]:
    """Copy a shipped profile to a temp dir (optionally edited) and point RAG_DATA_DIR at a fresh temp dir.

    With `pipelines_dir`, RAG_PIPELINES_DIR points at that folder as it is (a pipeline variant; no copy, no edits).
    """
    from app.testing.profiles import copy_profile

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    if pipelines_dir is not None:
        if edit_indexing is not None or edit_query is not None:
            raise ValueError("a pipelines_dir is used as it is: no edits")
        profile = pipelines_dir.resolve()
    else:
        profile = copy_profile(work / "pipelines", source, indexing=edit_indexing, query=edit_query)
    from app.settings import Settings

    # the packaged models stay where the deployment keeps them: a fresh data dir would reassemble the 1.1 GB GGUF
    os.environ.setdefault("RAG_MODEL_DIR", str(Settings().model_cache_dir.resolve()))
    os.environ["RAG_DATA_DIR"] = str(work / "data")
    os.environ["RAG_PIPELINES_DIR"] = str(profile)
    return profile, work / "data"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
