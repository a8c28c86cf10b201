"""The per-source loop shared by our converters (not a component).

Every converter reads each source into a ByteStream, merges the `meta` argument into it, converts it, and either
raises a `ConversionError` (the app indexes one file per run and reports the error for that file) or, with
`raise_on_failure=False`, logs and skips the source as Haystack's own converters do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from haystack import Document, logging
from haystack.components.converters.utils import get_bytestream_from_source, normalize_metadata
from haystack.dataclasses import ByteStream

from components.converters.errors import ConversionError

logger = logging.getLogger(__name__)

Convert = Callable[[ByteStream, dict[str, Any], str], list[Document]]


def source_name(source: str | Path | ByteStream) -> str:
    """A readable name for messages: the file name or path, or `<bytes>`."""
    if isinstance(source, ByteStream):
        name = source.meta.get("file_name") or source.meta.get("file_path")
        return str(name) if name else "<bytes>"
    return str(source)


def document_meta(
    bytestream: ByteStream, metadata: dict[str, Any], file_meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The meta of a source's Documents: what the file itself says (`file_meta`), overridden by the ByteStream's
    meta, overridden by the `meta` argument; `file_path` is reduced to its base name (no server paths stored)."""
    merged = {**(file_meta or {}), **bytestream.meta, **metadata}
    if file_path := merged.get("file_path"):
        merged["file_path"] = os.path.basename(str(file_path))
    return merged


def convert_sources(
    sources: list[str | Path | ByteStream],
    meta: dict[str, Any] | list[dict[str, Any]] | None,
    convert: Convert,
    *,
    raise_on_failure: bool,
) -> list[Document]:
    """Run `convert(bytestream, metadata, name)` for every source and concatenate the Documents."""
    documents: list[Document] = []
    for source, metadata in zip(sources, normalize_metadata(meta, sources_count=len(sources)), strict=True):
        name = source_name(source)
        try:
            try:
                bytestream = get_bytestream_from_source(source)
            except OSError as error:
                raise ConversionError(f"cannot open {name}: {error}") from error
            documents.extend(convert(bytestream, metadata, source_name(bytestream)))
        except ConversionError as error:
            if raise_on_failure:
                raise
            logger.warning("Could not read {file}: {error}", file=name, error=error)
    return documents
