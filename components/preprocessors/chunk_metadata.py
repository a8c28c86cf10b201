"""Give every chunk the metadata the service and citations rely on."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document, component

_DEFAULT_DROP = [
    "_split_overlap",
    "split_idx_start",
    "source_id",
    "parent_id",
    "split_id",
    "page_number",
    "section_marks",
    "section_parents",
]


@component
class ChunkMetadata:
    """
    Numbers chunks per source file and normalizes the page field after splitting.

    - `chunk_index`: 0-based position of the chunk within its source file (grouped by `group_by`, in input order;
      PDF pages arrive in page order, so the index runs across pages).
    - `page` is the converter's (one Document per PDF page or image frame); formats without pages have none.
      The splitter's own `page_number` (form-feed counting inside one Document) is dropped as it would say 1.
    - splitter bookkeeping fields listed in `drop_fields` are removed so the stored metadata stays small and flat.
    - `meta` given to `run` is set on every chunk last (the service's `source_id` and `version`: a splitter's own
      `source_id` is bookkeeping and dropped).
    """

    def __init__(self, *, group_by: str = "document_id", drop_fields: list[str] | None = None) -> None:
        """
        :param group_by: Meta field identifying the source file; chunks are numbered per value.
        :param drop_fields: Meta fields removed from every chunk.
        """
        if not group_by:
            raise ValueError("group_by must name a meta field")
        self.group_by = group_by
        self.drop_fields = list(_DEFAULT_DROP if drop_fields is None else drop_fields)

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document], meta: dict[str, Any] | None = None) -> dict[str, list[Document]]:
        """
        :param documents: Chunks from a splitter (or final chunks from a converter).
        :param meta: Metadata set on every chunk after the bookkeeping fields are dropped.
        :returns: `documents`: copies with `chunk_index` set and bookkeeping fields removed.
        """
        meta_for_all = dict(meta or {})
        counters: dict[Any, int] = {}
        out: list[Document] = []
        for doc in documents:
            meta = dict(doc.meta)
            key = meta.get(self.group_by)
            meta["chunk_index"] = counters.get(key, 0)
            counters[key] = meta["chunk_index"] + 1
            for field in self.drop_fields:
                meta.pop(field, None)
            meta.update(meta_for_all)
            out.append(replace(doc, meta=meta))
        return {"documents": out}
