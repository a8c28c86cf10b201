"""Haystack's built-in converters on real files, followed by our MetadataNormalizer.

DOCXToDocument: python-docx's own test documents (sdist) and a pandoc-made DOCX of the Python FAQ.
MarkdownToDocument: Node.js API docs (Debian nodejs) or pypdf's README.md. TextFileToDocument: ocrmypdf's linn.txt.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from haystack import Document, Pipeline
from haystack.components.converters import DOCXToDocument, MarkdownToDocument, TextFileToDocument
from haystack.dataclasses import ByteStream

from components.preprocessors.metadata_normalizer import MetadataNormalizer


def _normalize(documents: list[Document]) -> list[Document]:
    return MetadataNormalizer().run(documents=documents)["documents"]


def _assert_json_flat(meta: dict) -> None:
    json.dumps(meta)
    assert "docx" not in meta


# -- DOCX -------------------------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables(docx_file: Path) -> None:
    raw = DOCXToDocument().run(sources=[docx_file])["documents"]
    assert len(raw) == 1
    assert raw[0].meta["docx"]["author"] == "Steve Canny"

    document = _normalize(raw)[0]
    assert "Lorem ipsum dolor sit amet" in document.content
    assert document.meta["author"] == "Steve Canny"
    assert document.meta["created_at"] == "2023-11-03T17:14:00+00:00"
    assert document.meta["title"] == "blk-paras-and-tables"  # empty core title -> file name stem
    assert document.meta["file_name"] == "blk-paras-and-tables.docx"
    _assert_json_flat(document.meta)
    assert "docx" in raw[0].meta  # the input Document is untouched


def test_docx_core_properties(docx_coreprops_file: Path) -> None:
    document = _normalize(DOCXToDocument().run(sources=[docx_coreprops_file])["documents"])[0]
    assert document.meta["title"] == "Title"
    assert document.meta["author"] == "Steve Canny"
    assert document.meta["created_at"] == "2014-12-13T22:02:00+00:00"
    _assert_json_flat(document.meta)


def test_docx_without_core_properties(docx_no_coreprops_file: Path) -> None:
    raw = DOCXToDocument().run(sources=[docx_no_coreprops_file])["documents"]
    assert raw[0].meta["docx"]["title"] == "Word Document"  # python-docx's placeholder, not the file's
    document = _normalize(raw)[0]
    assert document.meta["title"] == "doc-no-coreprops"
    assert "author" not in document.meta
    assert "created_at" not in document.meta
    _assert_json_flat(document.meta)


def test_pandoc_docx_of_the_python_faq(pandoc_docx_file: Path) -> None:
    stream = ByteStream(
        pandoc_docx_file.read_bytes(),
        meta={"file_name": "python-faq.docx", "collection": "py", "document_id": "d", "content_hash": "h"},
    )
    document = _normalize(DOCXToDocument().run(sources=[stream])["documents"])[0]
    assert document.meta["title"] == "General Python FAQ"
    assert document.meta["author"] == "Python Software Foundation"
    assert datetime.fromisoformat(document.meta["created_at"]).year >= 2023
    assert document.meta["collection"] == "py"
    assert "What is Python?" in document.content
    _assert_json_flat(document.meta)


# -- Markdown / text ---------------------------------------------------------------------------------------


def test_markdown(markdown_file: Path) -> None:
    raw = MarkdownToDocument(progress_bar=False).run(sources=[markdown_file])["documents"]
    document = _normalize(raw)[0]
    assert len(document.content) > 500
    assert "```" not in document.content  # rendered to plain text
    assert document.meta["title"] == markdown_file.stem
    assert document.meta["file_name"] == markdown_file.name
    _assert_json_flat(document.meta)


def test_text_file(text_file: Path) -> None:
    document = _normalize(TextFileToDocument().run(sources=[text_file])["documents"])[0]
    assert document.content == text_file.read_text(encoding="utf-8")
    assert "The LinnSequencer" in document.content
    assert document.meta == {"file_path": "linn.txt", "file_name": "linn.txt", "title": "linn"}


# -- pipeline ----------------------------------------------------------------------------------------------

PIPELINE_YAML = """
components:
  router:
    type: haystack.components.routers.file_type_router.FileTypeRouter
    init_parameters:
      mime_types:
        - application/vnd.openxmlformats-officedocument.wordprocessingml.document
        - text/plain
  docx:
    type: haystack.components.converters.docx.DOCXToDocument
    init_parameters: {}
  text:
    type: haystack.components.converters.txt.TextFileToDocument
    init_parameters: {}
  joiner:
    type: haystack.components.joiners.document_joiner.DocumentJoiner
    init_parameters: {}
  normalizer:
    type: components.preprocessors.metadata_normalizer.MetadataNormalizer
    init_parameters:
      default_title_from_file_name: true
connections:
  - sender: router.application/vnd.openxmlformats-officedocument.wordprocessingml.document
    receiver: docx.sources
  - sender: router.text/plain
    receiver: text.sources
  - sender: docx.documents
    receiver: joiner.documents
  - sender: text.documents
    receiver: joiner.documents
  - sender: joiner.documents
    receiver: normalizer.documents
"""


def test_builtin_converters_and_normalizer_in_yaml_pipeline(docx_coreprops_file: Path, text_file: Path) -> None:
    pipeline = Pipeline.loads(PIPELINE_YAML, allowed_modules=["components"])
    documents = pipeline.run({"router": {"sources": [docx_coreprops_file, text_file]}})["normalizer"]["documents"]
    titles = sorted(doc.meta["title"] for doc in documents)
    assert titles == ["Title", "linn"]
    for document in documents:
        _assert_json_flat(document.meta)


@pytest.mark.parametrize("fixture_name", ["docx_file", "docx_coreprops_file", "pandoc_docx_file"])
def test_normalizer_keeps_document_ids(fixture_name: str, request: pytest.FixtureRequest) -> None:
    raw = DOCXToDocument().run(sources=[request.getfixturevalue(fixture_name)])["documents"]
    assert [doc.id for doc in _normalize(raw)] == [doc.id for doc in raw]
