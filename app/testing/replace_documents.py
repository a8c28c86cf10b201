"""`ReplaceDocumentsTest`: the contract of a store's `replace_documents(filters, documents) -> (written, removed)`.

A store's test module subclasses it and provides a `document_store` fixture: an empty store (embeddings optional).
"""

from __future__ import annotations

import threading
from typing import Any

from haystack import Document


def _doc_filter(document_id: str) -> dict[str, Any]:
    return {
        "operator": "AND",
        "conditions": [
            {"field": "meta.collection", "operator": "==", "value": "c"},
            {"field": "meta.document_id", "operator": "==", "value": document_id},
        ],
    }


def version_of(document_id: str, version: int, chunks: int, *, kept: int = 0) -> list[Document]:
    """`chunks` chunks of a document at `version`; the first `kept` have the same ids in every version."""
    return [
        Document(
            id=f"{document_id}-{index}" if index < kept else f"{document_id}-{version}-{index}",
            content=f"chunk {index} of version {version}",
            meta={"collection": "c", "document_id": document_id, "version": version},
        )
        for index in range(chunks)
    ]


class ReplaceDocumentsTest:
    """A document's chunks are replaced by its new ones in one step; other documents are untouched."""

    def test_replace_documents_removes_what_the_new_version_lacks(self, document_store: Any) -> None:
        document_store.write_documents(version_of("d1", 1, 4, kept=2) + version_of("d2", 1, 2))
        written, removed = document_store.replace_documents(_doc_filter("d1"), version_of("d1", 2, 3, kept=2))
        assert (written, removed) == (3, 2)  # two kept ids overwritten, one new; two old-only chunks removed
        d1 = document_store.filter_documents(_doc_filter("d1"))
        assert sorted(d.id for d in d1) == ["d1-0", "d1-1", "d1-2-2"] and {d.meta["version"] for d in d1} == {2}
        assert len(document_store.filter_documents(_doc_filter("d2"))) == 2

    def test_replace_documents_of_a_new_document_writes_it(self, document_store: Any) -> None:
        assert document_store.replace_documents(_doc_filter("d9"), version_of("d9", 1, 2)) == (2, 0)
        assert len(document_store.filter_documents(_doc_filter("d9"))) == 2

    def test_a_reader_sees_one_version_or_the_other(self, document_store: Any) -> None:
        document_store.write_documents(version_of("d1", 1, 6, kept=3))
        stop = threading.Event()
        seen: list[set[int]] = []

        def read() -> None:
            while not stop.is_set():
                seen.append({d.meta["version"] for d in document_store.filter_documents(_doc_filter("d1"))})

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for version in range(2, 12):
                document_store.replace_documents(_doc_filter("d1"), version_of("d1", version, 6, kept=3))
        finally:
            stop.set()
            reader.join(30)
        assert seen and all(len(versions) == 1 for versions in seen), [v for v in seen if len(v) != 1]
