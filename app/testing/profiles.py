"""Writable copies of the shipped pipeline profiles, optionally edited, for tests, benchmarks and scripts.

- `copy_profile(target, profile="default", indexing=..., query=...)`: copy `pipelines/` (the default profile) or
  `pipelines/profiles/<name>/` to `target`, without the nested `profiles/` folder, then apply the edits;
- `edit_yaml(path, change)`: load a YAML file, let `change` mutate it, write it back;
- `tiny_profile(target, max_tokens=32, profile="default")`: a copy with the tiny SmolLM2 model (for the `llm` and
  the question condenser's generator) and, for pgvector, a
  table of its own, for tests of everything but answer quality;
- `scripted_llm(reply, tokens=...)`: an edit of query.yml whose `llm` is a `SlowChatGenerator` streaming `reply`
  at once in `tokens` chunks, and whose relevance gate lets every passage through.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from app.pipeline_loader import PIPELINE_FILES, pipeline_file
from app.settings import PROJECT_ROOT

PIPELINES_DIR = PROJECT_ROOT / "pipelines"
TINY_MODEL = "smollm2-135m-instruct-q4_1"

Edit = Callable[[dict[str, Any]], None]


def profile_dir(profile: str = "default") -> Path:
    """The shipped folder of a profile: `pipelines/` for "default", else `pipelines/profiles/<profile>/`."""
    source = PIPELINES_DIR if profile == "default" else PIPELINES_DIR / "profiles" / profile
    if not source.is_dir():
        raise ValueError(f"no profile {profile!r} (no folder {source})")
    return source


def edit_yaml(path: Path, change: Edit) -> dict[str, Any]:
    """Load the YAML mapping at `path`, apply `change` (it mutates the mapping), write it back; the new mapping."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return data


def copy_profile(
    target: Path, profile: str = "default", *, indexing: Edit | None = None, query: Edit | None = None
) -> Path:
    """Copy a shipped profile to `target` (which must not exist) and apply the optional edits; returns `target`.

    :param indexing: mutates the parsed indexing.yml (written back as plain YAML; comments are not kept).
    :param query: mutates the parsed query.yml.
    """
    source = profile_dir(profile)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("profiles"))
    for pipeline in PIPELINE_FILES:  # a file the profile leaves to the default's is copied from there
        if not (target / f"{pipeline}.yml").is_file():
            shutil.copyfile(pipeline_file(source, pipeline), target / f"{pipeline}.yml")
    for name, change in (("indexing.yml", indexing), ("query.yml", query)):
        if change is not None:
            edit_yaml(target / name, change)
    return target


def scripted_llm(reply: str, *, tokens: int = 4) -> Edit:
    """An edit of query.yml: the `llm` answers `reply` without waiting, streamed as `tokens` chunks; the relevance
    gate's `min_score` is -1 (every passage reaches the prompt)."""

    def change(query: dict[str, Any]) -> None:
        components = query["components"]
        components["llm"] = {
            "type": "app.testing.slow_chat_generator.SlowChatGenerator",
            "init_parameters": {"seconds": 0, "tokens": tokens, "reply": reply},
        }
        components["gate"]["init_parameters"]["min_score"] = -1.0

    return change


def _tiny_llm(max_tokens: int) -> Edit:
    def change(query: dict[str, Any]) -> None:
        llm = query["components"]["llm"]
        if llm["type"].endswith("PackagedLlamaCppChatGenerator"):
            llm["init_parameters"]["model"] = TINY_MODEL
            llm["init_parameters"]["generation_kwargs"]["max_tokens"] = max_tokens
        condenser = query["components"].get("condenser", {}).get("init_parameters", {}).get("chat_generator", {})
        if condenser.get("type", "").endswith("PackagedLlamaCppChatGenerator"):  # the same (shared) model as llm
            condenser["init_parameters"]["model"] = TINY_MODEL

    return change


def _own_pgvector_table(table: str) -> Edit:
    def change(pipeline: dict[str, Any]) -> None:
        for spec in pipeline["components"].values():
            store = spec.get("init_parameters", {}).get("document_store")
            if store and store["type"].endswith("PgvectorDocumentStore"):
                store["init_parameters"].update(
                    table_name=table, hnsw_index_name=f"{table}_hnsw", keyword_index_name=f"{table}_tsv"
                )

    return change


def tiny_profile(target: Path, max_tokens: int = 32, profile: str = "default") -> Path:
    """Copy a shipped profile to `target` with the tiny SmolLM2 model (fast; answer quality not under test).

    A pgvector copy gets its own table (`t_<random>`), so test modules never see each other's rows.
    """
    own_table = _own_pgvector_table(f"t_{uuid.uuid4().hex[:12]}")
    tiny_llm = _tiny_llm(max_tokens)

    def query(data: dict[str, Any]) -> None:
        tiny_llm(data)
        own_table(data)

    return copy_profile(target, profile, indexing=own_table, query=query)
