"""Every pipeline profile loads offline, keeps the app's input/output contract and does not drift from the default.

Profiles are discovered by directory (`pipelines/profiles/<name>/`), so a new profile is covered as soon as it exists.
The drift check compares the raw YAML `init_parameters` of every component a profile shares by name with the default
profile: a prompt or chunking edit in `pipelines/*.yml` that is not copied to a profile fails here, unless that
component is listed in `DIVERGES` for the profile (the parts a profile replaces on purpose).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from app.pipeline_loader import (
    PIPELINE_FILES,
    _StoreSharing,
    load_pipeline,
    load_pipelines,
    pipeline_file,
    read_yaml,
)
from components.embedders.embedding_reuser import EmbeddingReuser

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "pipelines"
# A profile directory holds query.yml, indexing.yml or both (a missing one is the default's: app.pipeline_loader).
PROFILES = sorted(
    p for p in (DEFAULT / "profiles").glob("*/") if any((p / f"{name}.yml").is_file() for name in PIPELINE_FILES)
)

# Components a profile replaces on purpose: {profile: {pipeline file: {component names}}}.
# Everything else a profile shares by name with the default must have identical init_parameters.
DIVERGES: dict[str, dict[str, set[str]]] = {
    "ollama": {
        # Ollama embedder (its chunk guard counts no MiniLM tokens); LanceDB table chunks_ollama, 768-d
        "indexing": {"embedder", "chunk_guard", "reuser", "writer"},
        # no answerability gate (another embedder's cosine scale): the prompt keeps the refusal rule
        "query": {
            "text_embedder",
            "embedding_retriever",
            "keyword_retriever",
            "gate",
            "llm",
            "prompt_builder",
            "condenser",
        },
    },
    "weaviate": {
        "indexing": {"reuser", "writer"},  # WeaviateDocumentStore (the reuser reads the same store)
        # the gate's dense probe and its certainty-based threshold; the text embedder returns a plain list (the
        # Weaviate client's vector checks are not exercised here with `immutable_embedding`)
        # no answerability gate yet (uncalibrated for this retriever): the prompt keeps the refusal rule
        "query": {"text_embedder", "embedding_retriever", "gate", "prompt_builder"},
    },
    "pinecone": {
        "indexing": {"reuser", "writer"},  # PineconeDocumentStore (the reuser reads the same store)
        # PineconeEmbeddingRetriever; the text embedder returns a plain list (Pinecone's client JSON-encodes it)
        # no answerability gate yet (dense only, uncalibrated): the prompt keeps the refusal rule
        "query": {"text_embedder", "embedding_retriever", "prompt_builder"},
    },
    "pgvector": {
        "indexing": {"reuser", "writer"},  # pooled PgvectorDocumentStore (the reuser reads the same store)
        "query": {"embedding_retriever", "keyword_retriever"},  # pgvector embedding + keyword retrievers
    },
    "openai": {
        "query": {"llm", "condenser"},  # an OpenAI-compatible chat generator (the condenser's too)
    },
    "hierarchical": {
        "indexing": {"splitter", "reuser", "writer"},  # HierarchicalDocumentSplitter; table chunks_hier, keyword_text
        "query": {"embedding_retriever", "keyword_retriever"},  # the same table
    },
}
# Inputs the app only sends when a pipeline declares them (app/services/query.py: `if "candidates" in spec.inputs`;
# app/services/ingest.py: a vector store's chunking, when the splitter takes `split_length` / `split_overlap`).
OPTIONAL_INPUTS = {"candidates", "split_length", "split_overlap"}
# The app's query service and Hayhooks read exactly these.
SECRET_ENV_VARS = ("PINECONE_API_KEY", "WEAVIATE_API_KEY", "OPENAI_API_KEY", "PG_CONN_STR")


class _NoConnect(RuntimeError):
    pass


@pytest.fixture
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy secrets, a private data dir, and no socket connection at all (not even loopback) while loading."""
    for name in SECRET_ENV_VARS:
        monkeypatch.setenv(name, f"dummy-{name.lower()}")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))

    def refuse(self: socket.socket, address: Any) -> None:
        raise _NoConnect(f"loading a pipeline opened a connection to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _profile_params() -> list[Any]:
    return [pytest.param(DEFAULT, id="default")] + [pytest.param(p, id=p.name) for p in PROFILES]


def test_profiles_are_discovered() -> None:
    names = {p.name for p in PROFILES}
    assert {"ollama", "weaviate", "pinecone"} <= names
    for profile in PROFILES:
        assert (profile / "query.yml").is_file(), f"{profile} has indexing.yml but no query.yml"


@pytest.mark.parametrize("directory", _profile_params())
@pytest.mark.usefixtures("offline_env")
def test_profile_loads_offline_with_one_shared_store(directory: Path) -> None:
    pipelines = load_pipelines(directory)

    assert pipelines.document_store is not None
    assert len(pipelines.stores) == 1, "indexing and query must share one store config"
    assert pipelines.stores[0] is pipelines.document_store


@pytest.mark.parametrize("directory", _profile_params())
@pytest.mark.usefixtures("offline_env")
def test_queries_can_tell_chunks_of_another_embedding_model(directory: Path) -> None:
    """The chunks' `embedding_model` (the reuser's) is the query text_embedder's model, which QueryService reads."""
    pipelines = load_pipelines(directory)
    marked = {c.embedder_model for _, c in pipelines.indexing.pipeline.walk() if isinstance(c, EmbeddingReuser)}

    assert marked == {pipelines.query_embedding_model}, directory.name
    assert pipelines.query_embedding_model is not None


@pytest.mark.parametrize("directory", [DEFAULT, *PROFILES], ids=lambda p: p.name if p != DEFAULT else "default")
@pytest.mark.usefixtures("offline_env")
def test_each_file_loads_and_shares_its_store(directory: Path) -> None:
    """Each YAML loads on its own (sockets validated), and both files configure the very same store."""
    sharing = _StoreSharing()
    for name in PIPELINE_FILES:
        load_pipeline(pipeline_file(directory, name), on_component_init=sharing)

    assert len(sharing.stores) == 1


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@pytest.mark.usefixtures("offline_env")
def test_profile_keeps_the_default_contract(profile: Path) -> None:
    for name in PIPELINE_FILES:
        default = load_pipeline(DEFAULT / f"{name}.yml")
        spec = load_pipeline(pipeline_file(profile, name))

        assert set(spec.outputs) == set(default.outputs), f"{profile.name}/{name}.yml outputs"
        assert set(spec.inputs) <= set(default.inputs), f"{profile.name}/{name}.yml declares unknown inputs"
        assert set(spec.inputs) | OPTIONAL_INPUTS == set(default.inputs) | OPTIONAL_INPUTS, (
            f"{profile.name}/{name}.yml misses required inputs"
        )


def test_query_profiles_stream_through_a_component_named_llm() -> None:
    """The services inject the streaming callback as `llm.streaming_callback`."""
    for directory in [DEFAULT, *PROFILES]:
        components = read_yaml(pipeline_file(directory, "query"))["components"]
        assert "llm" in components, f"{directory.name}/query.yml has no `llm` component"


def _drift(default_dir: Path, profile_dir: Path, allowed: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """(components differing from the default and not allowlisted, allowlisted components that do not differ)."""
    drifted: list[str] = []
    stale: list[str] = []
    for name in PIPELINE_FILES:
        default = read_yaml(default_dir / f"{name}.yml")["components"]
        mine = read_yaml(pipeline_file(profile_dir, name))["components"]
        allowlist = allowed.get(name, set())
        for component in sorted(set(default) & set(mine)):
            same = default[component]["type"] == mine[component]["type"] and default[component].get(
                "init_parameters"
            ) == mine[component].get("init_parameters")
            if not same and component not in allowlist:
                drifted.append(f"{name}.yml:{component}")
            if same and component in allowlist:
                stale.append(f"{name}.yml:{component}")
    return drifted, stale


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_shared_components_do_not_drift_from_the_default(profile: Path) -> None:
    drifted, stale = _drift(DEFAULT, profile, DIVERGES.get(profile.name, {}))

    assert not drifted, (
        f"profile '{profile.name}' differs from pipelines/*.yml in {drifted}: copy the default's change, or list "
        f"the component in DIVERGES['{profile.name}'] if the profile replaces it on purpose"
    )
    assert not stale, f"DIVERGES['{profile.name}'] lists components identical to the default: {stale}"


@pytest.mark.parametrize(
    "profile",
    [p for p in PROFILES if "prompt_builder" not in DIVERGES.get(p.name, {}).get("query", set())],
    ids=lambda p: p.name,
)
def test_drift_check_catches_a_prompt_edit_in_the_default(profile: Path, tmp_path: Path) -> None:
    default = tmp_path / "default"
    default.mkdir()
    for name in PIPELINE_FILES:
        (default / f"{name}.yml").write_text((DEFAULT / f"{name}.yml").read_text())
    query = default / "query.yml"
    query.write_text(query.read_text().replace("Answer in one or two sentences", "Answer at length"))

    drifted, _ = _drift(default, profile, DIVERGES.get(profile.name, {}))

    assert "query.yml:prompt_builder" in drifted


def test_shipped_llama_cpp_threads_come_from_the_environment() -> None:
    """No thread count fitted to one machine: `n_threads` is `${RAG_LLM_THREADS:-}` (unset: llama.cpp's default)."""
    found = 0
    for directory in [DEFAULT, *PROFILES]:
        for name in PIPELINE_FILES:
            for spec in read_yaml(pipeline_file(directory, name))["components"].values():
                if spec["type"].endswith("PackagedLlamaCppChatGenerator"):
                    found += 1
                    assert spec["init_parameters"].get("n_threads") == "${RAG_LLM_THREADS:-}", directory
    assert found >= 1


def _specs_of_type(node: Any, *type_suffixes: str) -> list[dict[str, Any]]:
    """Every component or store of these types configured anywhere in a parsed pipeline YAML (nested ones too)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if str(node.get("type", "")).endswith(type_suffixes):
            found.append(node)
        for value in node.values():
            found.extend(_specs_of_type(value, *type_suffixes))
    elif isinstance(node, list):
        for value in node:
            found.extend(_specs_of_type(value, *type_suffixes))
    return found


def _lancedb_stores(node: Any) -> list[dict[str, Any]]:
    """Every LanceDB document store configured anywhere in a parsed pipeline YAML."""
    return _specs_of_type(node, "LanceDBDocumentStore")


# The shipped components that reassemble or derive a packaged model into their `cache_dir`.
MODEL_CACHE_USERS = ("PackagedLlamaCppChatGenerator", "OnnxTextEmbedder", "OnnxDocumentEmbedder", "ContextSelector")


def test_every_packaged_model_is_cached_in_the_deployments_model_dir() -> None:
    """One setting (RAG_MODEL_DIR, app/settings.py) places every packaged model: no component falls back to its
    own default folder, so data dirs that share a model dir never reassemble the 1.1 GB LLM again."""
    found = 0
    for directory in [DEFAULT, *PROFILES]:
        for name in PIPELINE_FILES:
            path = pipeline_file(directory, name)
            for spec in _specs_of_type(read_yaml(path), *MODEL_CACHE_USERS):
                found += 1
                assert spec["init_parameters"].get("cache_dir") == "${RAG_MODEL_DIR}", (path, spec["type"])
    assert found >= 20


@pytest.mark.parametrize("folder", [DEFAULT, *PROFILES], ids=lambda p: p.name)
def test_every_lancedb_store_filters_the_read_fields_in_sql(folder: Path) -> None:
    """`acl` and `tenant` (every caller's read filter, `app.services.visibility`) are promoted columns, so LanceDB
    evaluates the filter in its SQL, never in a Python residual after retrieval."""
    for name in PIPELINE_FILES:
        path = folder / f"{name}.yml"
        if not path.is_file():
            continue
        for store in _lancedb_stores(read_yaml(path)):
            fields = store["init_parameters"].get("indexed_meta_fields")
            assert fields is not None and {"collection", "acl", "tenant"} <= set(fields), (path, fields)
