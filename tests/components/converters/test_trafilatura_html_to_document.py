"""TrafilaturaHtmlToDocument on real Sphinx pages of the Python 3.11 documentation (Debian python3.11-doc)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import lxml.html
import pytest
import trafilatura
from haystack import Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ByteStream

from components.converters import trafilatura_html_to_document
from components.converters.errors import ConversionError
from components.converters.sections import marks_of, normalize
from components.converters.trafilatura_html_to_document import TrafilaturaHtmlToDocument, decode_html

# Sphinx chrome around the FAQ's body: present in the HTML, must not reach the Document
NAVIGATION = ["Navigation", "Previous topic", "Next topic", "This Page", "Report a Bug", "Show Source", "Quick search"]

FOOTER_ONLY_PAGE = b"""<!DOCTYPE html>
<html><head><title>Moved</title><style>body{color:red}</style></head>
<body><footer>This page moved to the new handbook.<script>track()</script></footer></body></html>"""


def test_init_defaults() -> None:
    converter = TrafilaturaHtmlToDocument()
    assert (converter.include_tables, converter.favor_recall, converter.raise_on_failure) == (True, True, True)


@pytest.mark.parametrize("kwargs", [{"include_tables": "yes"}, {"favor_recall": None}, {"raise_on_failure": 0}])
def test_init_rejects_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TrafilaturaHtmlToDocument(**kwargs)


def test_to_dict_from_dict_round_trip() -> None:
    converter = TrafilaturaHtmlToDocument(include_tables=False, favor_recall=False, raise_on_failure=False)
    data = component_to_dict(converter, "converter")
    assert data == {
        "type": "components.converters.trafilatura_html_to_document.TrafilaturaHtmlToDocument",
        "init_parameters": {"include_tables": False, "favor_recall": False, "raise_on_failure": False},
    }
    assert component_to_dict(component_from_dict(TrafilaturaHtmlToDocument, data, "converter"), "converter") == data


# -- real pages --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_python_faq_main_text_and_title(html_file: Path) -> None:
    raw = html_file.read_text(encoding="utf-8")
    documents = TrafilaturaHtmlToDocument().run(sources=[html_file])["documents"]
    assert len(documents) == 1
    document = documents[0]
    assert document.meta["title"] == "General Python FAQ"
    assert document.meta["file_path"] == "general.html"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", document.meta["created_at"])
    assert "What is Python?" in document.content
    assert "Python is an interpreted, interactive, object-oriented programming language" in document.content
    assert "¶" not in document.content
    for chrome in NAVIGATION:
        assert chrome in raw
        assert chrome not in document.content, chrome


@pytest.mark.integration
@pytest.mark.parametrize("page", ["design.html", "library.html", "programming.html", "windows.html"])
def test_other_faq_pages_title_from_h1(html_file: Path, page: str) -> None:
    path = html_file.parent / page
    h1 = lxml.html.fromstring(path.read_bytes()).find(".//h1")
    assert h1 is not None
    expected_title = h1.text_content().replace("¶", "").strip()
    document = TrafilaturaHtmlToDocument().run(sources=[path])["documents"][0]
    assert document.meta["title"] == expected_title
    assert len(document.content) > 1000
    assert "Quick search" not in document.content


@pytest.mark.integration
def test_declared_charset_is_honoured(html_file: Path) -> None:
    html = html_file.read_text(encoding="utf-8").replace('<meta charset="utf-8" />', '<meta charset="windows-1252" />')
    data = html.encode("cp1252", errors="replace")
    # the right single quote of "PSF\u2019s" is one cp1252 byte now, so the file is not valid UTF-8
    assert "\u2019".encode() not in data
    document = TrafilaturaHtmlToDocument().run(sources=[ByteStream(data)])["documents"][0]
    assert "The PSF\u2019s mission" in document.content


@pytest.mark.integration
def test_bytestream_encoding_meta_wins(html_file: Path) -> None:
    data = html_file.read_text(encoding="utf-8").encode("utf-16")
    document = TrafilaturaHtmlToDocument().run(sources=[ByteStream(data, meta={"encoding": "utf-16"})])["documents"][0]
    assert document.meta["title"] == "General Python FAQ"
    assert document.meta["encoding"] == "utf-16"


def test_decode_html_fallbacks() -> None:
    latin = "<html><body><p>Crème brûlée</p></body></html>".encode("latin-1")
    assert "Crème" in decode_html(latin, "latin-1")
    assert "Cr" in decode_html(latin)  # undeclared, not UTF-8: detection (may guess any single-byte codec)
    assert decode_html(b"\xef\xbb\xbf<p>x</p>") == "<p>x</p>"
    assert decode_html("<p>é</p>".encode(), "no-such-codec") == "<p>é</p>"


@pytest.mark.integration
def test_app_metadata_kept_and_wins_over_page_title(html_file: Path) -> None:
    meta = {"file_name": "faq.html", "collection": "py", "document_id": "d", "content_hash": "h", "tags": []}
    stream = ByteStream(html_file.read_bytes(), meta=dict(meta), mime_type="text/html")
    document = TrafilaturaHtmlToDocument().run(sources=[stream], meta={"title": "My FAQ"})["documents"][0]
    assert {key: document.meta[key] for key in meta} == meta
    assert document.meta["title"] == "My FAQ"


# -- fallback and failures -----------------------------------------------------------------------------------


def test_fallback_to_visible_body_text() -> None:
    document = TrafilaturaHtmlToDocument().run(sources=[ByteStream(FOOTER_ONLY_PAGE)])["documents"][0]
    assert document.content == "This page moved to the new handbook."
    assert document.meta["title"] == "Moved"


@pytest.mark.integration
def test_fallback_when_trafilatura_finds_nothing(html_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trafilatura, "bare_extraction", lambda *_args, **_kwargs: None)
    assert trafilatura_html_to_document.trafilatura.bare_extraction(b"") is None
    document = TrafilaturaHtmlToDocument().run(sources=[html_file])["documents"][0]
    assert "What is Python?" in document.content
    assert "¶" not in document.content
    assert "track(" not in document.content and "function" not in document.content[:200]
    assert document.meta["title"] == "General Python FAQ — Python 3.11.2 documentation"


@pytest.mark.parametrize("data", [b"", b"  \n ", b"<html><body></body></html>", b"<html><body><script>x()</script>"])
def test_page_without_text_raises(data: bytes) -> None:
    with pytest.raises(ConversionError):
        TrafilaturaHtmlToDocument().run(sources=[ByteStream(data, meta={"file_name": "blank.html"})])


def test_raise_on_failure_false_skips(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        documents = TrafilaturaHtmlToDocument(raise_on_failure=False).run(
            sources=[ByteStream(b"", meta={"file_name": "blank.html"}), ByteStream(FOOTER_ONLY_PAGE)]
        )["documents"]
    assert len(documents) == 1
    assert any("blank.html" in record.getMessage() for record in caplog.records)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="cannot open"):
        TrafilaturaHtmlToDocument().run(sources=[tmp_path / "missing.html"])


PIPELINE_YAML = """
components:
  router:
    type: haystack.components.routers.file_type_router.FileTypeRouter
    init_parameters:
      mime_types: ["text/html"]
  html:
    type: components.converters.trafilatura_html_to_document.TrafilaturaHtmlToDocument
    init_parameters:
      include_tables: true
connections:
  - sender: router.text/html
    receiver: html.sources
"""


@pytest.mark.integration
def test_in_yaml_pipeline(html_file: Path) -> None:
    pipeline = Pipeline.loads(PIPELINE_YAML, allowed_modules=["components"])
    documents = pipeline.run({"router": {"sources": [html_file]}})["html"]["documents"]
    assert len(documents) == 1
    assert documents[0].meta["title"] == "General Python FAQ"


def test_headings_become_section_marks_even_when_the_text_drops_them() -> None:
    page = (
        b"<html><head><title>Widgets</title></head><body><article>"
        b"<h1>1. Overview</h1><p>Widgets are small reusable parts that every application needs sooner or later.</p>"
        b"<h2>1.1. Building</h2><p>To build a widget, run the widget compiler on its description file first.</p>"
        b"</article></body></html>"
    )
    document = TrafilaturaHtmlToDocument().run(sources=[ByteStream(page)])["documents"][0]
    assert isinstance(document.meta["section_marks"], str)  # JSON: shared, not deep-copied, by every chunk
    marks = marks_of(document.meta)
    assert [mark["heading"] for mark in marks] == ["1. Overview", "1.1. Building"]
    assert marks[1]["anchor"] in normalize(document.content)


def test_a_page_without_headings_has_no_section_marks() -> None:
    document = TrafilaturaHtmlToDocument().run(sources=[ByteStream(FOOTER_ONLY_PAGE)])["documents"][0]
    assert "section_marks" not in document.meta
