"""HTML converter: main text and metadata with trafilatura, visible <body> text as a fallback."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html
import trafilatura
from haystack import Document, component, logging
from haystack.dataclasses import ByteStream
from trafilatura.utils import decode_file

from components.converters.errors import ConversionError
from components.converters.sections import dump_marks, html_marks
from components.converters.sources import convert_sources, document_meta
from components.validation import check_bool

logger = logging.getLogger(__name__)

# <meta charset="..."> or <meta http-equiv="Content-Type" content="text/html; charset=...">
_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_SNIFF_BYTES = 4096
_INVISIBLE_TAGS = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object")
_BLANK_LINES_RE = re.compile(r"\n\s*\n+")


def _clean(text: str | None) -> str:
    """Remove Sphinx "¶" header links and NULs, trim trailing spaces and runs of blank lines."""
    if not text:
        return ""
    text = text.replace("\u00b6", "").replace("\x00", "")
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANK_LINES_RE.sub("\n\n", "\n".join(lines)).strip()


def decode_html(data: bytes, encoding: str | None = None) -> str:
    """
    Decode HTML bytes: the given encoding (e.g. ByteStream meta) first, then a <meta charset> declared in the
    first 4 KiB, then UTF-8, then trafilatura's charset detection (charset_normalizer).
    """
    candidates: list[str] = []
    if encoding:
        candidates.append(encoding)
    declared = _META_CHARSET_RE.search(data[:_SNIFF_BYTES])
    if declared:
        candidates.append(declared.group(1).decode("ascii"))
    for candidate in candidates:
        try:
            codecs.lookup(candidate)
            return data.decode(candidate).removeprefix("\ufeff")
        except (LookupError, UnicodeDecodeError):
            logger.debug("HTML is not valid {encoding}; trying other encodings", encoding=candidate)
    return decode_file(data).removeprefix("\ufeff")


def _visible_body_text(html: str) -> tuple[str, str | None]:
    """Visible text of <body> and the <title>, with lxml (fallback when trafilatura extracts nothing)."""
    try:
        tree = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError) as error:
        raise ConversionError(f"unparseable HTML: {error}") from error
    title_element = tree.find(".//title")
    title = title_element.text_content().strip() if title_element is not None else None
    for element in list(tree.iter(*_INVISIBLE_TAGS)):
        if element.getparent() is not None:
            element.drop_tree()
    body = tree.find(".//body")
    root = body if body is not None else tree
    # block elements end lines; itertext() would glue "<p>a</p><p>b</p>" into "ab"
    for element in root.iter("p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"):
        element.tail = "\n" + (element.tail or "")
    text = "\n".join(" ".join(line.split()) for line in root.text_content().split("\n"))
    return text, title or None


@component
class TrafilaturaHtmlToDocument:
    """
    Converts HTML pages into one Document of their main text, with trafilatura.

    Boilerplate (navigation, sidebars, footers) is removed by trafilatura; Sphinx "¶" pilcrows are removed.
    Meta `title`, `author` and `created_at` (trafilatura's date, ISO `YYYY-MM-DD`) are set when found, and
    `section_marks` from the page's `<h1>`-`<h6>` headings (`components.converters.sections`).
    If trafilatura extracts nothing (tiny pages), the visible text of `<body>` is used instead.
    Bytes are decoded with the ByteStream's meta "encoding", else a declared `<meta charset>`, else UTF-8,
    else detection. A page without any text raises `ConversionError` (or is skipped with a warning when
    `raise_on_failure=False`).
    """

    def __init__(
        self, *, include_tables: bool = True, favor_recall: bool = True, raise_on_failure: bool = True
    ) -> None:
        """
        Create the converter.

        :param include_tables: keep the text of <table> elements.
        :param favor_recall: prefer more text when trafilatura is unsure whether a block is boilerplate.
        :param raise_on_failure: raise for a page without text (True) or log a warning and skip it.
        :raises ValueError: on an invalid argument.
        """
        self.include_tables = check_bool(include_tables, "include_tables")
        self.favor_recall = check_bool(favor_recall, "favor_recall")
        self.raise_on_failure = check_bool(raise_on_failure, "raise_on_failure")

    @component.output_types(documents=list[Document])
    def run(
        self,
        sources: list[str | Path | ByteStream],
        meta: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> dict[str, list[Document]]:
        """
        Convert HTML pages to Documents.

        :param sources: file paths or ByteStreams.
        :param meta: metadata for all sources (dict) or one dict per source (list); merged with ByteStream.meta.
        :returns: {"documents": [...]}
        :raises ConversionError: a page has no text or cannot be parsed (only when raise_on_failure=True).
        """
        documents = convert_sources(
            sources, meta, lambda bs, md, name: [self._convert(bs, md, name)], raise_on_failure=self.raise_on_failure
        )
        return {"documents": documents}

    def _convert(self, bytestream: ByteStream, metadata: dict[str, Any], name: str) -> Document:
        html = decode_html(bytestream.data, bytestream.meta.get("encoding"))
        if not html.strip():
            raise ConversionError(f"empty HTML file {name}")

        extracted = trafilatura.bare_extraction(
            html,
            with_metadata=True,
            include_tables=self.include_tables,
            favor_recall=self.favor_recall,
            include_comments=False,
        )
        # trafilatura >= 2 returns a trafilatura.settings.Document (or None); older versions a dict
        fields: dict[str, Any]
        if extracted is None:
            fields = {}
        elif isinstance(extracted, dict):
            fields = extracted
        else:
            fields = extracted.as_dict()

        text = _clean(fields.get("text"))
        title = _clean(fields.get("title"))
        if not text:
            logger.debug("trafilatura found no main text in {file}; using the visible <body> text", file=name)
            text, fallback_title = _visible_body_text(html)
            text = _clean(text)
            title = title or _clean(fallback_title)
        if not text:
            raise ConversionError(f"no text in HTML file {name}")

        file_meta: dict[str, Any] = {}
        if title:
            file_meta["title"] = title
        author = _clean(fields.get("author"))
        if author:
            file_meta["author"] = author
        date = fields.get("date")
        if date:
            file_meta["created_at"] = str(date)
        marks = html_marks(html)
        if marks:
            file_meta["section_marks"] = dump_marks(marks)

        return Document(content=text, meta=document_meta(bytestream, metadata, file_meta))
