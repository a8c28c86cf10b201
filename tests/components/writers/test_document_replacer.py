"""DocumentReplacer: each incoming document's chunks replace its stored ones through the store's replace_documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from haystack import Document, Pipeline
from haystack.document_stores.in_memory import InMemoryDocumentStore

from components.stores.lancedb import LanceDBDocumentStore
from components.writers.document_replacer import DocumentReplacer


def _chunk(document_id: str, text: str, version: int) -> Document:
    return Document(content=text, meta={"collection": "c", "document_id": document_id, "version": version})


def test_each_document_is_replaced_and_others_are_untouched(tmp_path: Path):
    store = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4)
    store.write_documents([_chunk("d1", "one", 1), _chunk("d1", "two", 1), _chunk("d2", "other", 1)])
    writer = DocumentReplacer(document_store=store)
    out = writer.run([_chunk("d1", "one again", 2), _chunk("d3", "new", 1)])
    assert out == {"documents_written": 2, "documents_removed": 2}
    stored = {(d.meta["document_id"], d.content) for d in store.filter_documents()}
    assert stored == {("d1", "one again"), ("d2", "other"), ("d3", "new")}


def test_a_chunk_without_its_document_is_refused(tmp_path: Path):
    writer = DocumentReplacer(document_store=LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4))
    with pytest.raises(ValueError, match="cannot replace"):
        writer.run([Document(content="orphan", meta={"collection": "c"})])


def test_a_store_without_replace_documents_is_refused():
    with pytest.raises(ValueError, match="replace_documents"):
        DocumentReplacer(document_store=InMemoryDocumentStore())


def test_serializes_with_its_store(tmp_path: Path):
    pipeline = Pipeline()
    pipeline.add_component("writer", DocumentReplacer(document_store=LanceDBDocumentStore(path=str(tmp_path / "db"))))
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["components"]).get_component("writer")
    assert isinstance(loaded.document_store, LanceDBDocumentStore) and loaded.group_by == ["collection", "document_id"]
