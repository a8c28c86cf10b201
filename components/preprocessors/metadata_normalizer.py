"""Maps what the converters put in Document.meta onto the project's standard, JSON-flat keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import os
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from haystack import Document, component, logging

from components.validation import check_bool

logger = logging.getLogger(__name__)

# Haystack DOCXToDocument's `docx` meta (DOCXMetadata dataclass, or its asdict()) -> our keys.
_DOCX_KEYS = (("title", "title"), ("author", "author"), ("created", "created_at"))


def _json_safe(value: Any) -> Any:
    """Return a JSON-serializable version of value: scalars, lists and str-keyed dicts stay; the rest becomes str."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _json_safe(value.value)
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_json_safe(item) for item in items]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json_safe(dataclasses.asdict(value))
    return str(value)


def _is_python_docx_default(docx: Mapping[str, Any]) -> bool:
    """Whether `docx` meta are the defaults python-docx creates when a DOCX has no core-properties part."""
    return docx.get("title") == "Word Document" and docx.get("last_modified_by") == "python-docx"


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _file_stem(file_name: str) -> str:
    stem = PurePath(file_name).stem
    return stem or file_name


@component
class MetadataNormalizer:
    """
    Normalizes converter metadata into the project's standard keys, returning new Documents.

    - Haystack `DOCXToDocument`'s `docx` meta (a `DOCXMetadata` dataclass or a dict) gives `title`,
      `author` and `created_at` (only where those keys are missing or empty), then the `docx` key is removed.
      The placeholder properties python-docx reports for a file without any (title "Word Document",
      last modified by "python-docx") are ignored.
    - `file_name` defaults to the basename of `file_path`.
    - `title` defaults to the file name's stem when missing or empty (`default_title_from_file_name`).
    - Values that are not JSON scalars, lists or dicts become strings (datetimes/dates become ISO-8601).

    Input Documents are not mutated; their ids are kept.
    """

    def __init__(self, *, default_title_from_file_name: bool = True) -> None:
        """
        Create the normalizer.

        :param default_title_from_file_name: set `title` to the file name without extension when it is missing.
        :raises ValueError: on an invalid argument.
        """
        self.default_title_from_file_name = check_bool(default_title_from_file_name, "default_title_from_file_name")

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        Normalize the metadata of Documents.

        :param documents: Documents from any converter.
        :returns: {"documents": new Documents with normalized meta, same order, same ids}
        """
        return {"documents": [dataclasses.replace(doc, meta=self._normalize(doc.meta)) for doc in documents]}

    def _normalize(self, meta: dict[str, Any]) -> dict[str, Any]:
        normalized = dict(meta)

        docx = normalized.pop("docx", None)
        if dataclasses.is_dataclass(docx) and not isinstance(docx, type):
            docx = dataclasses.asdict(docx)
        if isinstance(docx, Mapping) and _is_python_docx_default(docx):
            # python-docx invents core properties for a file that has none (title "Word Document"): not real metadata
            docx = {}
        if isinstance(docx, Mapping):
            for source_key, target_key in _DOCX_KEYS:
                value = docx.get(source_key)
                if not _is_blank(value) and _is_blank(normalized.get(target_key)):
                    normalized[target_key] = value.strip() if isinstance(value, str) else value
        elif docx is not None:
            logger.warning("Ignoring unexpected 'docx' metadata of type {type}", type=type(docx).__name__)

        file_path = normalized.get("file_path")
        if _is_blank(normalized.get("file_name")) and not _is_blank(file_path):
            normalized["file_name"] = os.path.basename(str(file_path))

        if self.default_title_from_file_name and _is_blank(normalized.get("title")):
            file_name = normalized.get("file_name")
            if not _is_blank(file_name):
                normalized["title"] = _file_stem(str(file_name))

        return {str(key): _json_safe(value) for key, value in normalized.items()}
