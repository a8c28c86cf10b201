"""Section marks: where a converted document's sections begin, for `ContextualHeader` to name each chunk's section.

A converter that knows a document's headings puts them in meta, as plain JSON:

* `section`: the heading in effect where the document starts (a PDF page that continues the previous page's section);
* `section_marks`: the headings that begin inside the document, in order, as a JSON array (a string: the splitter
  deep-copies every chunk's meta, and a string is shared instead of copied) of objects
  `{"heading": str}` (the heading is a line of the text, possibly after its section number: "1.1.2 Root account")
  or `{"heading": str, "anchor": str}` (the heading is not in the text, whose section starts with `anchor`: the
  first words after an HTML heading that the main-text extractor dropped).

`ContextualHeader` (after the splitter) finds the marks in each chunk; `ChunkMetadata` drops `section_marks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import lxml.etree
import lxml.html

#: Characters of following text an HTML heading's anchor keeps (after normalization).
ANCHOR_CHARS = 48
#: Shorter anchors are too likely to match elsewhere: such a heading gets no mark.
MIN_ANCHOR_CHARS = 16
#: Longest heading kept (longer ones are cut).
MAX_HEADING_CHARS = 200
#: Most marks kept per document (a hostile file cannot make every chunk's meta huge before they are dropped).
MAX_MARKS = 2000

_MAX_SIBLINGS = 32
_MAX_LEVELS = 8
_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template", *_HEADING_TAGS})


def normalize(text: str) -> str:
    """Case-folded letters and digits only: robust to the whitespace, punctuation and hyphenation extractors change."""
    return "".join(char for char in text.casefold() if char.isalnum())


def clean_heading(text: str) -> str:
    """One line, single spaces, at most `MAX_HEADING_CHARS`."""
    return " ".join(text.split())[:MAX_HEADING_CHARS]


def page_sections(outline: Iterable[tuple[int, str]], page_count: int) -> list[tuple[str | None, list[dict[str, str]]]]:
    """
    Per page (0-based index): the heading in effect at its start and the marks of the headings that begin on it.

    :param outline: `(page index, title)` of every outline (bookmark) entry, in outline order.
    :param page_count: Pages in the document.
    """
    entries = sorted(
        ((index, clean_heading(title)) for index, title in outline if 0 <= index < page_count and title.strip()),
        key=lambda entry: entry[0],  # stable: entries of one page keep their outline order
    )[:MAX_MARKS]
    result: list[tuple[str | None, list[dict[str, str]]]] = []
    current: str | None = None
    position = 0
    for page in range(page_count):
        marks: list[dict[str, str]] = []
        while position < len(entries) and entries[position][0] == page:
            marks.append({"heading": entries[position][1]})
            position += 1
        result.append((current, marks))
        if marks:
            current = marks[-1]["heading"]
    return result


def html_marks(html: str) -> list[dict[str, str]]:
    """
    The marks of an HTML page's `<h1>`-`<h6>` headings: each anchored to the first words that follow it.

    Main-text extractors (trafilatura) often drop headings; the words after one usually survive. Headings with too
    little text after them get no mark. Never raises on odd markup: a page that cannot be parsed has no marks.
    """
    try:
        root = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    marks: list[dict[str, str]] = []
    for count, element in enumerate(root.iter(*_HEADING_TAGS)):
        if count >= MAX_MARKS:  # bounded work on a page made of headings
            break
        heading = clean_heading(element.text_content())
        anchor = normalize(_following_text(element))[:ANCHOR_CHARS]
        if heading and len(anchor) >= MIN_ANCHOR_CHARS:
            marks.append({"heading": heading, "anchor": anchor})
            if len(marks) >= MAX_MARKS:
                break
    return marks


def _following_text(element: Any, limit: int = 4 * ANCHOR_CHARS) -> str:
    """Text after `element` in document order (its tail, then its and its ancestors' following siblings),
    skipping other headings, scripts and styles; about `limit` characters, from at most `_MAX_SIBLINGS` siblings on
    each of `_MAX_LEVELS` levels (a hostile page cannot make this quadratic)."""
    parts: list[str] = []
    size = 0
    node = element
    levels = 0
    while node is not None and size < limit and levels < _MAX_LEVELS:
        levels += 1
        if node.tail:
            parts.append(node.tail)
            size += len(node.tail.strip())
        for visited, sibling in enumerate(node.itersiblings()):
            if size >= limit or visited >= _MAX_SIBLINGS:
                break
            if isinstance(sibling.tag, str) and sibling.tag.lower() not in _SKIPPED_TAGS:
                text = " ".join(sibling.itertext())
                parts.append(text)
                size += len(text.strip())
            if sibling.tail:
                parts.append(sibling.tail)
                size += len(sibling.tail.strip())
        node = node.getparent()
    return " ".join(parts)


def dump_marks(marks: list[dict[str, str]]) -> str:
    """`section_marks` as stored in meta: a JSON array."""
    return json.dumps(marks, ensure_ascii=False, separators=(",", ":"))


def marks_of(meta: dict[str, Any]) -> Sequence[dict[str, Any]]:
    """The well-formed marks in `meta["section_marks"]` (a JSON array or a list; anything else is ignored)."""
    marks = meta.get("section_marks")
    if isinstance(marks, str):
        try:
            marks = json.loads(marks)
        except ValueError:
            return []
    if not isinstance(marks, list):
        return []
    return [mark for mark in marks if isinstance(mark, dict) and isinstance(mark.get("heading"), str)]
