"""What names a document and where it goes, validated at every entry point (API, CLI, jobs, sync): collection names,
file names, tags (and the metadata the service reserves), content types, source ids (and their copies) and document ids.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import unicodedata
from pathlib import Path
from typing import Any

from app.errors import InvalidInputError

COLLECTION_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
TAG_KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
RESERVED_META = frozenset(
    {
        "file_name",
        "collection",
        "document_id",
        "content_hash",
        "content_type",
        "page",
        "chunk_index",
        "title",
        "author",
        "created_at",
        "context_header",  # ContextualHeader: "title > section > page", embedded and keyword-indexed
        "section",
        "section_marks",
        "section_parents",
        "acl",  # the id of the document's access list (`app.services.access`): the read filter's field
        "access",  # the access list itself (shown in listings)
        "tenant",  # the tenant of the collection ("" for none): the read filter's other field
        "source_id",  # the document's source (its file name or the caller's id) and the version of it
        "version",
        "chunk_hash",  # EmbeddingReuser: sha256 of the embedded text
        "embedding_model",  # EmbeddingReuser: the model of the chunk's embedding
    }
)
SOURCE_ID_MAX_CHARS = 1024
_EXTRA_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".csv": "text/csv",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


def validate_collection(name: str) -> str:
    """Collection names are 1-64 characters of letters, digits, `_` and `-`."""
    if not isinstance(name, str) or not COLLECTION_PATTERN.fullmatch(name):
        raise InvalidInputError(f"invalid collection name {name!r}: use 1-64 letters, digits, '_' or '-'")
    return name


# Kept although format characters: ZWNJ/ZWJ join emoji and some scripts' letters; they cannot reorder or hide text.
_KEPT_FORMAT_CHARACTERS = frozenset({"\u200c", "\u200d"})


def clean_filename(filename: str | None) -> str:
    """The base name of an uploaded file as stored, listed, logged and put in the prompt: control characters (NUL,
    ANSI escapes, newlines), format characters (bidi overrides such as U+202E, invisible marks) and line/paragraph
    separators are removed; "upload" when nothing is left."""
    cleaned = "".join(
        ch
        for ch in filename or ""
        if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp") or ch in _KEPT_FORMAT_CHARACTERS
    )
    return Path(cleaned.strip()).name or "upload"


def validate_tags(tags: dict[str, Any] | None) -> dict[str, Any]:
    """User tags become filterable metadata: identifier keys, scalar (or list of scalar) values."""
    if not tags:
        return {}
    if not isinstance(tags, dict):
        raise InvalidInputError("tags must be an object of key -> value")
    clean: dict[str, Any] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not TAG_KEY_PATTERN.fullmatch(key):
            raise InvalidInputError(
                f"invalid tag name {key!r}: use letters, digits and '_' (not starting with a digit)"
            )
        if key in RESERVED_META:
            raise InvalidInputError(f"tag name {key!r} is reserved for metadata the service sets itself")
        scalars = (str, int, float, bool)
        if not (isinstance(value, scalars) or (isinstance(value, list) and all(isinstance(v, scalars) for v in value))):
            raise InvalidInputError(f"tag {key!r} must be a string, number, boolean or a list of those")
        clean[key] = value
    return clean


def guess_content_type(filename: str, declared: str | None = None) -> str | None:
    """Content type from the file name's extension, else the declared one (browsers often send octet-stream)."""
    suffix = Path(filename).suffix.lower()
    guessed = _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(filename)[0]
    if guessed:
        return guessed
    if declared and declared != "application/octet-stream":
        return declared.split(";")[0].strip()
    return None


def validate_source_id(source_id: str) -> str:
    """A source id is 1-1024 characters without control characters (a path, an object key, a URL, a name)."""
    if (
        not isinstance(source_id, str)
        or not 1 <= len(source_id) <= SOURCE_ID_MAX_CHARS
        or any(unicodedata.category(ch) in ("Cc", "Cs") for ch in source_id)
    ):
        raise InvalidInputError(f"invalid source_id: use 1-{SOURCE_ID_MAX_CHARS} characters without control characters")
    return source_id


_COPY = "\x1f"  # a control character: never in a caller's source id


def source_copy(source_id: str, number: int) -> str:
    """The registry key of the `number`-th source of a collection with this id (1: the id itself). Sources are
    identified among the documents a caller reads: an upload whose source id is the source of a document the caller
    may not read is the caller's own source of that id, the first copy that is free or that it reads
    (`IngestService.own_source`), so that an upload never confirms a hidden document."""
    return source_id if number == 1 else f"{source_id}{_COPY}{number}"


def public_source_id(source_id: str | None) -> str | None:
    """The source id a caller gave (without the copy number of `source_copy`): what answers and chunks show."""
    return None if source_id is None else source_id.split(_COPY, 1)[0]


def validate_source_key(source_id: str) -> str:
    """A caller's source id (`validate_source_id`), or one of its copies (`source_copy`)."""
    given, _, number = source_id.partition(_COPY)
    validate_source_id(given)
    if _COPY in source_id and not (number.isdigit() and int(number) >= 2):
        raise InvalidInputError(f"invalid source_id: use 1-{SOURCE_ID_MAX_CHARS} characters without control characters")
    return source_id


def document_id_for(collection: str, content_hash: str) -> str:
    """Stable id of a file's content within a collection (the same bytes in two collections are two documents)."""
    return hashlib.sha256(f"{collection}\x00{content_hash}".encode()).hexdigest()[:32]
