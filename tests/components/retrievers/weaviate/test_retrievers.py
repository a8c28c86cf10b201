"""The Weaviate retrievers over `EnvWeaviateDocumentStore`: YAML keeps the store's class and its URL reference."""

from __future__ import annotations

import pytest
from haystack import Pipeline

from components.retrievers.weaviate import EnvWeaviateEmbeddingRetriever, EnvWeaviateHybridRetriever
from components.stores.weaviate import EnvWeaviateDocumentStore

REFERENCE = "${WEAVIATE_URL:-http://localhost:8080}"


@pytest.mark.parametrize("retriever_class", [EnvWeaviateEmbeddingRetriever, EnvWeaviateHybridRetriever])
def test_a_yaml_pipeline_keeps_the_store_class_and_resolves_the_url_per_host(
    retriever_class: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEAVIATE_URL", "http://host-a:8080")
    pipeline = Pipeline()
    pipeline.add_component("retriever", retriever_class(document_store=EnvWeaviateDocumentStore(url=REFERENCE)))
    yaml_text = pipeline.dumps()
    assert REFERENCE in yaml_text and "host-a" not in yaml_text

    monkeypatch.setenv("WEAVIATE_URL", "http://host-b:8080")
    retriever = Pipeline.loads(yaml_text, allowed_modules=["components"]).get_component("retriever")
    assert type(retriever) is retriever_class
    assert type(retriever._document_store) is EnvWeaviateDocumentStore
    assert retriever._document_store._url == "http://host-b:8080"
