"""Shared helpers for the benchmark scripts (not part of the product)."""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def temp_profile(edit_indexing=None, edit_query=None, source: str = "default") -> tuple[Path, Path]:
    """Copy a shipped profile to a temp dir (optionally edited) and point RAG_DATA_DIR at a fresh temp dir."""
    from app.pipeline_loader import PIPELINE_FILES, pipeline_file

    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    profile = work / "pipelines"
    origin = ROOT / "pipelines" if source == "default" else ROOT / "pipelines" / "profiles" / source
    shutil.copytree(origin, profile, ignore=shutil.ignore_patterns("profiles"))
    for name in PIPELINE_FILES:  # a file the profile leaves to the default is copied from there
        if not (profile / f"{name}.yml").is_file():
            shutil.copyfile(pipeline_file(origin, name), profile / f"{name}.yml")
    for name, edit in (("indexing.yml", edit_indexing), ("query.yml", edit_query)):
        if edit is not None:
            data = yaml.safe_load((profile / name).read_text())
            edit(data)
            (profile / name).write_text(yaml.safe_dump(data, sort_keys=False))
    os.environ["RAG_DATA_DIR"] = str(work / "data")
    os.environ["RAG_PIPELINES_DIR"] = str(profile)
    return profile, work / "data"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
