"""MetadataNormalizer: standard keys from converter meta, JSON-flat values, no mutation of its input."""

from __future__ import annotations

import copy
import enum
import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from haystack import Document
from haystack.components.converters.docx import DOCXMetadata
from haystack.core.serialization import component_from_dict, component_to_dict

from components.preprocessors.metadata_normalizer import MetadataNormalizer


def _docx_metadata(**overrides: object) -> DOCXMetadata:
    fields: dict = {
        "author": "Steve Canny",
        "category": "",
        "comments": "",
        "content_status": "",
        "created": "2014-12-13T22:02:00+00:00",
        "identifier": "",
        "keywords": "",
        "language": "",
        "last_modified_by": "Steve Canny",
        "last_printed": None,
        "modified": "2014-12-13T22:06:00+00:00",
        "revision": 2,
        "subject": "",
        "title": "Title",
        "version": "",
    }
    fields.update(overrides)
    return DOCXMetadata(**fields)


def _run(*metas: dict, **init: bool) -> list[dict]:
    documents = [Document(content=f"text {i}", meta=meta) for i, meta in enumerate(metas)]
    return [doc.meta for doc in MetadataNormalizer(**init).run(documents=documents)["documents"]]


def test_init_and_serialization() -> None:
    assert MetadataNormalizer().default_title_from_file_name is True
    normalizer = MetadataNormalizer(default_title_from_file_name=False)
    data = component_to_dict(normalizer, "normalizer")
    assert data == {
        "type": "components.preprocessors.metadata_normalizer.MetadataNormalizer",
        "init_parameters": {"default_title_from_file_name": False},
    }
    assert component_to_dict(component_from_dict(MetadataNormalizer, data, "normalizer"), "normalizer") == data
    with pytest.raises(ValueError):
        MetadataNormalizer(default_title_from_file_name="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        MetadataNormalizer(True)  # type: ignore[misc]


def test_docx_dataclass_is_mapped_and_removed() -> None:
    [meta] = _run({"file_name": "a.docx", "docx": _docx_metadata()})
    assert meta == {
        "file_name": "a.docx",
        "title": "Title",
        "author": "Steve Canny",
        "created_at": "2014-12-13T22:02:00+00:00",
    }


def test_docx_dict_is_mapped_and_removed() -> None:
    docx = {"title": "  Report  ", "author": "", "created": datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)}
    [meta] = _run({"file_path": "/data/x/report.docx", "docx": docx})
    assert meta["title"] == "Report"
    assert "author" not in meta
    assert meta["created_at"] == "2020-01-02T03:04:05+00:00"
    assert meta["file_name"] == "report.docx"
    assert "docx" not in meta


def test_existing_values_win_over_docx_unless_empty() -> None:
    [meta] = _run({"title": "User title", "author": "", "docx": _docx_metadata()})
    assert meta["title"] == "User title"
    assert meta["author"] == "Steve Canny"


def test_python_docx_placeholder_properties_are_ignored() -> None:
    placeholder = _docx_metadata(
        title="Word Document", author="", created=None, last_modified_by="python-docx", revision=1
    )
    [meta] = _run({"file_name": "notes.docx", "docx": placeholder})
    assert meta == {"file_name": "notes.docx", "title": "notes"}


def test_unexpected_docx_value_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        [meta] = _run({"docx": "not metadata"})
    assert "docx" not in meta
    assert any("docx" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("meta", "expected_title", "expected_file_name"),
    [
        ({"file_name": "R-intro.pdf"}, "R-intro", "R-intro.pdf"),
        ({"file_name": "archive.tar.gz"}, "archive.tar", "archive.tar.gz"),
        ({"file_name": "README"}, "README", "README"),
        ({"file_path": "/usr/share/doc/linn.txt"}, "linn", "linn.txt"),
        ({"file_name": "", "file_path": "sub/dir/page.html"}, "page", "page.html"),
        ({"file_name": "a.pdf", "title": "   "}, "a", "a.pdf"),
        ({"file_name": "a.pdf", "title": "Kept"}, "Kept", "a.pdf"),
    ],
)
def test_title_and_file_name_defaults(meta: dict, expected_title: str, expected_file_name: str) -> None:
    [normalized] = _run(meta)
    assert normalized["title"] == expected_title
    assert normalized["file_name"] == expected_file_name


def test_no_file_name_no_title() -> None:
    assert _run({"collection": "c"}) == [{"collection": "c"}]


def test_title_default_can_be_disabled() -> None:
    [meta] = _run({"file_name": "a.pdf"}, default_title_from_file_name=False)
    assert "title" not in meta


class Color(enum.Enum):
    RED = "red"


class Opaque:
    def __str__(self) -> str:
        return "opaque!"


def test_values_become_json_serializable() -> None:
    [meta] = _run(
        {
            "when": datetime(2024, 5, 6, 7, 8, 9),
            "day": date(2024, 5, 6),
            "path": Path("/tmp/x.pdf"),
            "tags": ("a", "b"),
            "set": {"y", "x"},
            "raw": b"bytes",
            "color": Color.RED,
            "obj": Opaque(),
            "nested": {"inner": [datetime(2020, 1, 1), 1, None, True, 2.5]},
            "nan": float("nan"),
            "plain": [1, "two", {"three": 3}],
        }
    )
    assert meta == {
        "when": "2024-05-06T07:08:09",
        "day": "2024-05-06",
        "path": "/tmp/x.pdf",
        "tags": ["a", "b"],
        "set": ["x", "y"],
        "raw": "bytes",
        "color": "red",
        "obj": "opaque!",
        "nested": {"inner": ["2020-01-01T00:00:00", 1, None, True, 2.5]},
        "nan": "nan",
        "plain": [1, "two", {"three": 3}],
    }
    json.dumps(meta, allow_nan=False)


def test_input_documents_are_not_mutated() -> None:
    original_meta = {"file_path": "/x/y.docx", "docx": {"title": "T", "created": datetime(2020, 1, 1)}, "k": [1]}
    document = Document(content="hello", meta=original_meta)
    snapshot = copy.deepcopy(document.meta)
    [result] = MetadataNormalizer().run(documents=[document])["documents"]
    assert document.meta == snapshot
    assert result is not document
    assert result.meta is not document.meta
    assert result.id == document.id
    assert result.content == "hello"
    assert result.meta["title"] == "T"
    result.meta["k"].append(2)
    assert document.meta["k"] == [1]


def test_empty_input() -> None:
    assert MetadataNormalizer().run(documents=[]) == {"documents": []}
