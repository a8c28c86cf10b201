"""The `weaviate` profile against a real Weaviate (WEAVIATE_URL; WEAVIATE_API_KEY when it needs one).

Uses its own Weaviate class (RagChunksLive<random>) and collection, deleted at the end.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from app.composition import build_services
from app.pipeline_loader import PipelineSet, _StoreSharing, load_pipeline
from app.settings import Settings
from app.testing.profiles import copy_profile

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("WEAVIATE_URL"), reason="set WEAVIATE_URL (e.g. http://localhost:8080)"),
]

TINY_LLM = "smollm2-135m-instruct-q4_1"  # as app.testing.profiles.tiny_profile: quick to warm up, not under test


def _copy_profile(target: Path, class_name: str) -> None:
    def live(data: dict) -> None:
        for spec in data["components"].values():
            store = spec.get("init_parameters", {}).get("document_store")
            if store:
                params = store["init_parameters"]
                params["url"] = os.environ["WEAVIATE_URL"]
                params["grpc_port"] = int(os.environ.get("WEAVIATE_GRPC_PORT", "50051"))
                params["collection_settings"]["class"] = class_name
                if os.environ.get("WEAVIATE_API_KEY"):
                    secret = {"type": "env_var", "env_vars": ["WEAVIATE_API_KEY"], "strict": True}
                    params["auth_client_secret"] = {"type": "api_key", "init_parameters": {"api_key": secret}}
        if "llm" in data["components"]:
            data["components"]["llm"]["init_parameters"]["model"] = TINY_LLM

    copy_profile(target, "weaviate", indexing=live, query=live)


def test_weaviate_profile_indexes_queries_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    class_name = f"RagChunksLive{uuid.uuid4().hex[:8]}"
    collection = f"live-{uuid.uuid4().hex[:8]}"
    _copy_profile(tmp_path / "profile", class_name)
    sharing = _StoreSharing()  # load_pipelines cannot find a store behind the weaviate retrievers' `_document_store`
    indexing = load_pipeline(tmp_path / "profile" / "indexing.yml", on_component_init=sharing)
    query = load_pipeline(tmp_path / "profile" / "query.yml", on_component_init=sharing)
    (store,) = sharing.stores.values()
    pipelines = PipelineSet(tmp_path / "profile", indexing, query, store, [store])
    services = build_services(Settings(data_dir=tmp_path / "data", pipelines_dir=tmp_path / "profile"), pipelines)
    try:
        result = services.ingest.ingest_bytes(
            b"The warranty of the Acme kettle lasts 24 months.\n\nDescaling: use vinegar once a month.\n",
            "kettle.txt",
            collection=collection,
        )
        assert result.status == "indexed"
        collections = services.collections
        info = collections.info(collection)
        assert (info.documents, info.chunks) == (1, result.chunks)
        assert collection in {c.name for c in collections.list()}

        answer = services.query.ask("How long is the kettle warranty?", collection=collection, generate=False)
        assert answer.sources and answer.sources[0].filename == "kettle.txt"
        assert "24 months" in " ".join(s.text for s in answer.sources)
        other = services.query.ask("kettle warranty", collection=f"{collection}-x", generate=False)
        assert other.sources == []

        assert collections.drop(collection) == result.chunks
        assert collections.info(collection).chunks == 0
    finally:
        store.client.collections.delete(class_name)
        store.close()
