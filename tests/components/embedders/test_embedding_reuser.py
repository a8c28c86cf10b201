"""EmbeddingReuser: chunks whose embedded text is stored with an embedding skip the embedder, in any pipeline."""

from __future__ import annotations

from typing import Any

import pytest
from haystack import Document, Pipeline, component
from haystack.document_stores.in_memory import InMemoryDocumentStore

from components.embedders.embedding_reuser import CHUNK_HASH, EmbeddingReuser, chunk_hash
from components.embedders.onnx_document_embedder import OnnxDocumentEmbedder


def _chunk(text: str, header: str = "Manual > page 1", document_id: str = "d1", **meta: Any) -> Document:
    return Document(
        content=text, meta={"collection": "c", "document_id": document_id, "context_header": header, **meta}
    )


def _stored(store: InMemoryDocumentStore, *chunks: Document, embedding: float = 0.5) -> None:
    reuser = EmbeddingReuser(document_store=store, meta_fields_to_embed=["context_header"])
    hashed = reuser.run(list(chunks))["to_embed"]
    store.write_documents([Document(content=d.content, meta=d.meta, embedding=[embedding] * 4) for d in hashed])


def test_chunk_hash_is_of_the_text_the_embedder_embeds():
    doc = _chunk("The lamp is lit at dusk.")
    embedder = OnnxDocumentEmbedder(meta_fields_to_embed=["context_header"])
    assert chunk_hash(doc, ["context_header"]) == chunk_hash(Document(content=embedder._text_of(doc)), [])
    assert chunk_hash(doc, ["context_header"]) != chunk_hash(
        _chunk("The lamp is lit at dusk.", "Other"), ["context_header"]
    )
    assert chunk_hash(doc, []) == chunk_hash(_chunk("The lamp is lit at dusk.", "Other"), [])


def test_stored_chunks_keep_their_embeddings_and_the_rest_is_embedded():
    store = InMemoryDocumentStore()
    _stored(store, _chunk("kept one"), _chunk("kept two"), _chunk("dropped"))
    reuser = EmbeddingReuser(document_store=store, meta_fields_to_embed=["context_header"])
    out = reuser.run([_chunk("kept one"), _chunk("kept two"), _chunk("new"), _chunk("kept one", header="Moved")])
    assert [d.content for d in out["reused"]] == ["kept one", "kept two"]
    assert all(d.embedding == [0.5] * 4 and d.meta[CHUNK_HASH] for d in out["reused"])
    assert [(d.content, d.meta["context_header"]) for d in out["to_embed"]] == [
        ("new", "Manual > page 1"),
        ("kept one", "Moved"),  # its header is embedded: it changed, so it is embedded again
    ]
    assert out["changes"] == {"unchanged": 2, "added": 2, "removed": 1}


def test_chunks_of_other_documents_or_without_an_embedding_are_never_reused():
    store = InMemoryDocumentStore()
    _stored(store, _chunk("shared text", document_id="other"))
    store.write_documents([Document(content="no vector", meta={**_chunk("no vector").meta, CHUNK_HASH: "x"})])
    reuser = EmbeddingReuser(document_store=store, meta_fields_to_embed=["context_header"])
    out = reuser.run([_chunk("shared text"), Document(content="no document id")])
    assert out["reused"] == [] and len(out["to_embed"]) == 2


def test_embeddings_of_another_model_are_never_reused():
    store = InMemoryDocumentStore()
    first = EmbeddingReuser(document_store=store, meta_fields_to_embed=["context_header"], embedder_model="model-a")
    hashed = first.run([_chunk("kept")])["to_embed"]
    assert hashed[0].meta["embedding_model"] == "model-a"
    store.write_documents([Document(content=d.content, meta=d.meta, embedding=[0.5] * 4) for d in hashed])
    assert [d.content for d in first.run([_chunk("kept")])["reused"]] == ["kept"]
    swapped = EmbeddingReuser(document_store=store, meta_fields_to_embed=["context_header"], embedder_model="model-b")
    out = swapped.run([_chunk("kept")])
    assert out["reused"] == [] and [d.meta["embedding_model"] for d in out["to_embed"]] == ["model-b"]
    assert out["changes"] == {"unchanged": 1, "added": 0, "removed": 0}  # the text is unchanged, its vector is not
    restored = EmbeddingReuser.from_dict(swapped.to_dict())
    assert restored.embedder_model == "model-b"


def test_init_is_validated():
    with pytest.raises(ValueError):
        EmbeddingReuser(document_store=object())
    with pytest.raises(ValueError):
        EmbeddingReuser(document_store=InMemoryDocumentStore(), group_by=[])
    with pytest.raises(ValueError):
        EmbeddingReuser(document_store=InMemoryDocumentStore(), embedder_model="")


@component
class CountingEmbedder:
    def __init__(self) -> None:
        self.texts: list[str] = []

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        self.texts.extend(d.content or "" for d in documents)
        return {"documents": [Document(content=d.content, meta=d.meta, embedding=[1.0] * 4) for d in documents]}


YAML = """
components:
  reuser:
    type: components.embedders.embedding_reuser.EmbeddingReuser
    init_parameters:
      meta_fields_to_embed: [context_header]
      document_store:
        type: haystack.document_stores.in_memory.document_store.InMemoryDocumentStore
        init_parameters: {}
  embedded:
    type: haystack.components.joiners.document_joiner.DocumentJoiner
    init_parameters: {join_mode: concatenate}
connections:
  - {sender: reuser.reused, receiver: embedded.documents}
"""


def test_in_a_yaml_pipeline_only_new_chunks_reach_the_embedder():
    pipeline = Pipeline.loads(YAML, allowed_modules=["components", "haystack"])
    store = pipeline.get_component("reuser").document_store
    embedder = CountingEmbedder()
    pipeline.add_component("embedder", embedder)
    pipeline.connect("reuser.to_embed", "embedder.documents")
    pipeline.connect("embedder.documents", "embedded.documents")
    first = pipeline.run({"reuser": {"documents": [_chunk("alpha"), _chunk("beta")]}})["embedded"]["documents"]
    store.write_documents(first)
    assert sorted(embedder.texts) == ["alpha", "beta"]
    embedder.texts.clear()
    result = pipeline.run(
        {"reuser": {"documents": [_chunk("alpha"), _chunk("gamma")]}}, include_outputs_from={"reuser"}
    )
    assert embedder.texts == ["gamma"]
    assert sorted(d.content for d in result["embedded"]["documents"]) == ["alpha", "gamma"]
    assert all(d.embedding == [1.0] * 4 for d in result["embedded"]["documents"])
    assert result["reuser"]["changes"] == {"unchanged": 1, "added": 1, "removed": 1}
    loaded = EmbeddingReuser.from_dict(pipeline.get_component("reuser").to_dict())
    assert isinstance(loaded.document_store, InMemoryDocumentStore) and loaded.meta_fields_to_embed == [
        "context_header"
    ]
