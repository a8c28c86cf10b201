"""The `pinecone` profile against the real Pinecone API (PINECONE_API_KEY; PINECONE_INDEX, default rag-chunks).

Writes into its own namespace and collection and deletes both at the end. Pinecone is eventually consistent: reads
are retried for a while (short sleeps) until the upserted vectors are visible.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.composition import build_services
from app.pipeline_loader import load_pipelines
from app.services.collections import collection_filter
from app.settings import Settings
from app.testing.profiles import copy_profile

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("PINECONE_API_KEY"), reason="set PINECONE_API_KEY"),
]

TINY_LLM = "smollm2-135m-instruct-q4_1"  # as app.testing.profiles.tiny_profile: quick to warm up, not under test


def _eventually(read: Callable[[], Any], done: Callable[[Any], bool], attempts: int = 120) -> Any:
    value = read()
    for _ in range(attempts):
        if done(value):
            return value
        time.sleep(0.5)
        value = read()
    return value


def test_pinecone_profile_indexes_queries_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    namespace = f"live-{uuid.uuid4().hex[:8]}"
    collection = f"live-{uuid.uuid4().hex[:8]}"

    def live(data: dict) -> None:
        for spec in data["components"].values():
            store = spec.get("init_parameters", {}).get("document_store")
            if store:
                store["init_parameters"]["namespace"] = namespace
                store["init_parameters"]["index"] = os.environ.get("PINECONE_INDEX", "rag-chunks")
        if "llm" in data["components"]:
            data["components"]["llm"]["init_parameters"]["model"] = TINY_LLM

    profile = copy_profile(tmp_path / "profile", "pinecone", indexing=live, query=live)
    pipelines = load_pipelines(profile)
    store = pipelines.document_store
    scope = collection_filter(collection)
    services = build_services(Settings(data_dir=tmp_path / "data", pipelines_dir=profile), pipelines)
    try:
        result = services.ingest.ingest_bytes(
            b"The warranty of the Acme kettle lasts 24 months.\n\nDescaling: use vinegar once a month.\n",
            "kettle.txt",
            collection=collection,
        )
        assert result.status == "indexed"
        chunks = _eventually(lambda: store.count_documents_by_filter(scope), lambda n: n == result.chunks)
        assert chunks == result.chunks
        info = services.collections.info(collection)
        assert (info.documents, info.chunks) == (1, result.chunks)

        answer = services.query.ask("How long is the kettle warranty?", collection=collection, generate=False)
        assert answer.sources and answer.sources[0].filename == "kettle.txt"
        assert "24 months" in " ".join(s.text for s in answer.sources)
        assert answer.sources[0].score is not None and answer.sources[0].score > 0.3

        assert store.delete_by_filter(scope) == result.chunks
        assert _eventually(lambda: store.count_documents_by_filter(scope), lambda n: n == 0) == 0
    finally:
        store.delete_all_documents()  # this test's namespace only
        store.close()
