"""Convert Haystack Documents to and from the rows of the LanceDB table.

The table holds:

* ``id`` (primary key), ``content``, ``embedding`` (``fixed_size_list<float32>[embedding_dim]``),
* ``meta_json``: the full ``Document.meta`` as JSON, the source of truth for metadata,
* ``blob_data`` / ``blob_mime_type`` / ``blob_meta_json`` and ``sparse_json``,
* one nullable string column per promoted meta field (``indexed_meta_fields``), mirroring ``meta[field]`` so
  that filters on those fields can be pushed down to LanceDB as SQL,
* optionally ``keyword_text`` (tables created with ``keyword_meta_fields``): the text the full-text index covers,
  the values of those meta fields (a chunk's contextual header) followed by ``content``. It is never read back:
  the passage is ``content``. Tables without it (created before it existed) index ``content``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from haystack.dataclasses import ByteStream, Document, SparseEmbedding

BASE_COLUMNS: tuple[str, ...] = (
    "id",
    "content",
    "embedding",
    "meta_json",
    "blob_data",
    "blob_mime_type",
    "blob_meta_json",
    "sparse_json",
)
#: Columns needed to rebuild a Document without its embedding.
DOC_COLUMNS: tuple[str, ...] = tuple(c for c in BASE_COLUMNS if c != "embedding")
#: The optional full-text column: keyword meta fields + content.
KEYWORD_COLUMN = "keyword_text"


def keyword_text(document: Document, keyword_meta_fields: Sequence[str]) -> str | None:
    """What the full-text index holds for `document`: its keyword meta fields' values, then its content; nothing
    for a parent of `HierarchicalDocumentSplitter` (stored for `AutoMergingRetriever`, never a search hit)."""
    children = document.meta.get("__children_ids")
    if isinstance(children, list) and children:
        return None
    values = [document.meta.get(name) for name in keyword_meta_fields]
    parts = [str(value) for value in values if value is not None and str(value).strip()]
    return "\n".join([*parts, document.content or ""])


def table_schema(embedding_dim: int, indexed_meta_fields: Sequence[str], *, keyword_column: bool = False) -> pa.Schema:
    """The Arrow schema of a table with vectors of `embedding_dim`, these promoted meta columns and, with
    `keyword_column`, the `keyword_text` column."""
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("content", pa.large_string()),
        pa.field("embedding", pa.list_(pa.float32(), embedding_dim)),
        pa.field("meta_json", pa.large_string(), nullable=False),
        pa.field("blob_data", pa.binary()),
        pa.field("blob_mime_type", pa.string()),
        pa.field("blob_meta_json", pa.string()),
        pa.field("sparse_json", pa.string()),
    ]
    fields.extend(pa.field(name, pa.string()) for name in indexed_meta_fields)
    if keyword_column:
        fields.append(pa.field(KEYWORD_COLUMN, pa.large_string()))
    return pa.schema(fields)


def check_table_schema(
    schema: pa.Schema, *, embedding_dim: int, indexed_meta_fields: Sequence[str], table_name: str, path: str
) -> None:
    """
    Check that an existing table has the columns and vector size the store is configured for.

    :raises ValueError: naming the mismatch and what to do about it.
    """
    expected = table_schema(embedding_dim, indexed_meta_fields, keyword_column=KEYWORD_COLUMN in schema.names)
    missing = [f.name for f in expected if f.name not in schema.names]
    if missing:
        raise ValueError(
            f"LanceDB table {table_name!r} at {path!r} lacks columns {missing}: it was created with "
            "different indexed_meta_fields (or not by LanceDBDocumentStore). Use the same indexed_meta_fields "
            "or a new table."
        )
    extra = [name for name in schema.names if name not in expected.names]
    if extra:
        raise ValueError(
            f"LanceDB table {table_name!r} at {path!r} has promoted columns {extra} that are not in "
            f"indexed_meta_fields={list(indexed_meta_fields)}. Use the same indexed_meta_fields or a new table."
        )
    emb_type = schema.field("embedding").type
    if not pa.types.is_fixed_size_list(emb_type) or emb_type.list_size != embedding_dim:
        raise ValueError(
            f"LanceDB table {table_name!r} stores embeddings of type {emb_type}, but embedding_dim={embedding_dim}"
        )


def checked_embedding(embedding: Any, embedding_dim: int, what: str) -> np.ndarray:
    """
    Return `embedding` as a float32 vector of `embedding_dim` finite values.

    :raises ValueError: if it is not one, with `what` naming the embedding's owner.
    """
    try:
        vector = np.asarray(embedding, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: embedding must be a list of floats") from e
    if vector.shape != (embedding_dim,):
        raise ValueError(
            f"{what}: embedding has shape {vector.shape}, expected ({embedding_dim},) (embedding_dim={embedding_dim})"
        )
    if not np.all(np.isfinite(vector)):
        raise ValueError(f"{what}: embedding contains NaN or infinite values")
    return vector


def documents_to_arrow(
    documents: Sequence[Document],
    *,
    embedding_dim: int,
    indexed_meta_fields: Sequence[str],
    keyword_meta_fields: Sequence[str] | None = None,
) -> pa.Table:
    """
    Build the table rows of `documents`, mirroring the promoted meta fields into their columns, and, unless
    `keyword_meta_fields` is None, filling the `keyword_text` column from those fields and the content.

    :raises ValueError: if a document cannot be stored (empty id, bad embedding, non-JSON meta, non-string value
        of a promoted field).
    """
    n = len(documents)
    vectors = np.zeros((n, embedding_dim), dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    meta_json: list[str] = []
    blob_data: list[bytes | None] = []
    blob_mime: list[str | None] = []
    blob_meta: list[str | None] = []
    sparse: list[str | None] = []
    promoted: dict[str, list[str | None]] = {name: [] for name in indexed_meta_fields}

    for i, doc in enumerate(documents):
        if not isinstance(doc.id, str) or not doc.id:
            raise ValueError("Every document needs a non-empty string id")
        if doc.content is not None and not isinstance(doc.content, str):
            raise ValueError(f"Document {doc.id!r}: content must be a string or None")
        if doc.embedding is not None:
            vectors[i] = checked_embedding(doc.embedding, embedding_dim, f"Document {doc.id!r}")
            valid[i] = True
        if not isinstance(doc.meta, dict):
            raise ValueError(f"Document {doc.id!r}: meta must be a dictionary")
        meta_json.append(_dumps(doc.meta, f"Document {doc.id!r}: meta"))
        for name in indexed_meta_fields:
            value = doc.meta.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(
                    f"Document {doc.id!r}: meta field {name!r} is an indexed (promoted) field and must be a "
                    f"string or None, got {type(value).__name__} {value!r}"
                )
            promoted[name].append(value)
        if doc.blob is not None:
            blob_data.append(bytes(doc.blob.data))
            blob_mime.append(doc.blob.mime_type)
            blob_meta.append(_dumps(doc.blob.meta or {}, f"Document {doc.id!r}: blob meta"))
        else:
            blob_data.append(None)
            blob_mime.append(None)
            blob_meta.append(None)
        sparse.append(
            _dumps(doc.sparse_embedding.to_dict(), f"Document {doc.id!r}: sparse embedding")
            if doc.sparse_embedding is not None
            else None
        )

    embedding = pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.reshape(-1), type=pa.float32()), embedding_dim, mask=pa.array(~valid)
    )
    columns: dict[str, Any] = {
        "id": pa.array([d.id for d in documents], type=pa.string()),
        "content": pa.array([d.content for d in documents], type=pa.large_string()),
        "embedding": embedding,
        "meta_json": pa.array(meta_json, type=pa.large_string()),
        "blob_data": pa.array(blob_data, type=pa.binary()),
        "blob_mime_type": pa.array(blob_mime, type=pa.string()),
        "blob_meta_json": pa.array(blob_meta, type=pa.string()),
        "sparse_json": pa.array(sparse, type=pa.string()),
    }
    for name, values in promoted.items():
        columns[name] = pa.array(values, type=pa.string())
    with_keywords = keyword_meta_fields is not None
    if keyword_meta_fields is not None:
        columns[KEYWORD_COLUMN] = pa.array(
            [keyword_text(d, keyword_meta_fields) for d in documents], type=pa.large_string()
        )
    return pa.table(columns, schema=table_schema(embedding_dim, indexed_meta_fields, keyword_column=with_keywords))


def arrow_to_documents(
    rows: pa.Table,
    *,
    embedding_dim: int,
    include_embedding: bool,
    scores: list[float | None] | None = None,
) -> list[Document]:
    """Rebuild Documents from table rows (holding at least `DOC_COLUMNS`, and `embedding` if included)."""
    n = rows.num_rows

    def col(name: str) -> list[Any]:
        return rows.column(name).to_pylist()

    ids = col("id")
    contents = col("content")
    metas = col("meta_json")
    blob_data = col("blob_data")
    blob_mime = col("blob_mime_type")
    blob_meta = col("blob_meta_json")
    sparse = col("sparse_json")
    embeddings = _embeddings_to_lists(rows.column("embedding"), embedding_dim) if include_embedding else None

    docs: list[Document] = []
    for i in range(n):
        blob = None
        if blob_data[i] is not None:
            blob = ByteStream(
                data=blob_data[i],
                meta=json.loads(blob_meta[i]) if blob_meta[i] else {},
                mime_type=blob_mime[i],
            )
        docs.append(
            Document(
                id=ids[i],
                content=contents[i],
                blob=blob,
                meta=json.loads(metas[i]) if metas[i] else {},
                score=scores[i] if scores is not None else None,
                embedding=embeddings[i] if embeddings is not None else None,
                sparse_embedding=SparseEmbedding.from_dict(json.loads(sparse[i])) if sparse[i] else None,
            )
        )
    return docs


def _embeddings_to_lists(column: pa.ChunkedArray, dim: int) -> list[list[float] | None]:
    out: list[list[float] | None] = []
    for chunk in column.chunks:
        n = len(chunk)
        if n == 0:
            continue
        values = chunk.values.slice(chunk.offset * dim, n * dim).to_numpy(zero_copy_only=False)
        matrix = values.reshape(n, dim).tolist()
        valid = chunk.is_valid().to_pylist()
        out.extend(row if ok else None for row, ok in zip(matrix, valid, strict=True))
    return out


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} is not JSON-serializable: {e}") from e
