"""`EnvWeaviateDocumentStore`: the server URL from the environment, serialized as written (no server is contacted)."""

from __future__ import annotations

import pytest
from haystack_integrations.document_stores.weaviate import WeaviateDocumentStore

from components.stores.weaviate import EnvWeaviateDocumentStore

REFERENCE = "${WEAVIATE_URL:-http://localhost:8080}"


def test_the_reference_is_resolved_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVIATE_URL", "http://weaviate:8080")
    store = EnvWeaviateDocumentStore(url=REFERENCE, grpc_port=50051)
    assert isinstance(store, WeaviateDocumentStore)
    assert store._url == "http://weaviate:8080"


def test_the_default_applies_when_the_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVIATE_URL", raising=False)
    assert EnvWeaviateDocumentStore(url=REFERENCE)._url == "http://localhost:8080"
    assert EnvWeaviateDocumentStore(url="http://plain:8080")._url == "http://plain:8080"


def test_an_unset_variable_without_default_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEAVIATE_URL", raising=False)
    with pytest.raises(ValueError, match="WEAVIATE_URL is not set"):
        EnvWeaviateDocumentStore(url="${WEAVIATE_URL}")


def test_serialization_keeps_the_reference_and_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVIATE_URL", "http://weaviate:8080")
    data = EnvWeaviateDocumentStore(url=REFERENCE, grpc_port=50052).to_dict()
    assert data["type"] == "components.stores.weaviate.document_store.EnvWeaviateDocumentStore"
    assert data["init_parameters"]["url"] == REFERENCE
    monkeypatch.setenv("WEAVIATE_URL", "http://elsewhere:8080")  # another host: the same YAML, its own URL
    restored = EnvWeaviateDocumentStore.from_dict(data)
    assert (restored._url, restored._grpc_port) == ("http://elsewhere:8080", 50052)
