"""Reuse the stored embeddings of chunks that did not change when a new version of a file is indexed."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict, logging

logger = logging.getLogger(__name__)

CHUNK_HASH = "chunk_hash"
EMBEDDING_MODEL = "embedding_model"  # the model that made a chunk's embedding: another model's is never reused


def chunk_hash(document: Document, meta_fields_to_embed: list[str], separator: str = "\n") -> str:
    """sha256 of exactly the text an embedder embeds for `document` (its `meta_fields_to_embed` values, then the
    content, joined by `separator`, as Haystack's document embedders do; their constant prefix/suffix left out)."""
    fields = [str(document.meta[key]) for key in meta_fields_to_embed if document.meta.get(key) is not None]
    return hashlib.sha256(separator.join([*fields, document.content or ""]).encode()).hexdigest()


@component
class EmbeddingReuser:
    """
    Sends the chunks whose embedded text is already stored with an embedding around the embedder.

    Every chunk gets meta `chunk_hash` (`chunk_hash()`: set `meta_fields_to_embed` and `embedding_separator` as the
    embedder's). The stored chunks of each incoming document (meta `collection` + `document_id`: one store call per
    document) are looked up; a chunk whose hash a stored chunk with an embedding has goes out on `reused` with that
    embedding, the others on `to_embed` (connect it to the embedder, and both to a joiner before the writer).
    `changes` counts the chunks by hash against the stored ones: `unchanged` (in both), `added` (new only),
    `removed` (stored only).

    Usage in a pipeline: `chunk_metadata -> reuser.documents`, `reuser.to_embed -> embedder.documents`,
    `reuser.reused -> joiner.documents`, `embedder.documents -> joiner.documents`, `joiner -> writer`.
    """

    def __init__(
        self,
        *,
        document_store: Any,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        group_by: list[str] | None = None,
        embedder_model: str | None = None,
    ) -> None:
        """
        :param document_store: The store the writer writes to (its `filter_documents` is read).
        :param meta_fields_to_embed: The embedder's `meta_fields_to_embed`.
        :param embedding_separator: The embedder's `embedding_separator`.
        :param group_by: Meta fields that identify a document's chunks in the store (default: collection,
            document_id); a chunk missing one of them is always embedded.
        :param embedder_model: The embedder's model (checked at load against the embedder's `model`). Chunks carry it
            as meta `embedding_model`, and only embeddings made by this model are reused: after a change of model, a
            re-index (`rag ingest --replace`) embeds every chunk again.
        """
        if not hasattr(document_store, "filter_documents"):
            raise ValueError("document_store must be a Haystack DocumentStore")
        fields = list(meta_fields_to_embed or [])
        if not all(isinstance(name, str) and name for name in fields):
            raise ValueError("meta_fields_to_embed must be a list of meta field names")
        if not isinstance(embedding_separator, str):
            raise ValueError("embedding_separator must be a string")
        keys = ["collection", "document_id"] if group_by is None else list(group_by)
        if not keys or not all(isinstance(name, str) and name for name in keys):
            raise ValueError("group_by must name at least one meta field")
        if embedder_model is not None and (not isinstance(embedder_model, str) or not embedder_model):
            raise ValueError("embedder_model must be a non-empty string (or None)")
        self.embedder_model = embedder_model
        self.document_store = document_store
        self.meta_fields_to_embed = fields
        self.embedding_separator = embedding_separator
        self.group_by = keys

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            document_store=self.document_store.to_dict(),
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            group_by=self.group_by,
            embedder_model=self.embedder_model,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddingReuser:
        return default_from_dict(cls, data)

    def _stored(self, key: tuple[Any, ...]) -> list[Document]:
        conditions = [
            {"field": f"meta.{name}", "operator": "==", "value": value}
            for name, value in zip(self.group_by, key, strict=True)
        ]
        return list(self.document_store.filter_documents({"operator": "AND", "conditions": conditions}))

    @component.output_types(reused=list[Document], to_embed=list[Document], changes=dict[str, int])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """
        :param documents: Chunks to be embedded and written.
        :returns: `reused`: chunks with a stored embedding copied; `to_embed`: the rest; `changes`: counts of
            `unchanged`, `added` and `removed` chunks (by chunk hash, against the stored chunks).
        """
        model = {EMBEDDING_MODEL: self.embedder_model} if self.embedder_model is not None else {}
        hashed = [
            replace(
                doc,
                meta={
                    **doc.meta,
                    CHUNK_HASH: chunk_hash(doc, self.meta_fields_to_embed, self.embedding_separator),
                    **model,
                },
            )
            for doc in documents
        ]
        groups: dict[tuple[Any, ...], list[Document]] = {}
        to_embed: list[Document] = []
        for doc in hashed:
            key = tuple(doc.meta.get(name) for name in self.group_by)
            if any(value is None for value in key):
                to_embed.append(doc)
            else:
                groups.setdefault(key, []).append(doc)
        reused: list[Document] = []
        changes = {"unchanged": 0, "added": len(to_embed), "removed": 0}
        for key, docs in groups.items():
            stored = [doc for doc in self._stored(key) if doc.meta.get(CHUNK_HASH)]
            embeddings = {
                doc.meta[CHUNK_HASH]: doc.embedding
                for doc in stored
                if doc.embedding is not None and doc.meta.get(EMBEDDING_MODEL) == self.embedder_model
            }
            old = Counter(doc.meta[CHUNK_HASH] for doc in stored)
            new = Counter(doc.meta[CHUNK_HASH] for doc in docs)
            changes["unchanged"] += sum((old & new).values())
            changes["added"] += sum((new - old).values())
            changes["removed"] += sum((old - new).values())
            for doc in docs:
                embedding = embeddings.get(doc.meta[CHUNK_HASH])
                if embedding is None:
                    to_embed.append(doc)
                else:
                    reused.append(replace(doc, embedding=list(embedding)))
        if reused:
            logger.info(
                "Reusing {reused} stored embeddings; {count} chunks to embed", reused=len(reused), count=len(to_embed)
            )
        return {"reused": reused, "to_embed": to_embed, "changes": changes}
