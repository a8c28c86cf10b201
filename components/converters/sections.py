"""Section marks: where a converted document's sections begin, for `ContextualHeader` to name each chunk's section.

A converter that knows a document's headings puts them in meta, as plain JSON:

* `section`: the heading in effect where the document starts (a PDF page that continues the previous page's section);
* `section_parents`: the headings above `section` in the outline, outermost first, as a JSON array of strings;
* `section_marks`: the headings that begin inside the document, in order, as a JSON array (a string: the splitter
  deep-copies every chunk's meta, and a string is shared instead of copied) of objects
  `{"heading": str}` (the heading is a line of the text, possibly after its section number: "1.1.2 Root account")
  or `{"heading": str, "anchor": str}` (the heading is not in the text, whose section starts with `anchor`: the
  first words after an HTML heading that the main-text extractor dropped), either with `"parents": [str, ...]`
  when the heading has headings above it (a bookmark's ancestors, an `<h3>`'s `<h2>` and `<h1>`).

`ContextualHeader` (after the splitter) finds the marks in each chunk; it and `ChunkMetadata` drop `section_marks`
and `section_parents`.
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
#: Most parent headings kept per mark (the nearest ones).
_MAX_PARENTS = 6

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


#: One page's sections: the heading in effect at its start, that heading's parents, the marks that begin on it.
PageSections = tuple[str | None, list[str], list[dict[str, Any]]]


def page_sections(outline: Iterable[tuple[int, str, int]], page_count: int) -> list[PageSections]:
    """
    Per page (0-based index): the heading in effect at its start, the headings above that one, and the marks of the
    headings that begin on the page (each with its `parents`, when it has any).

    :param outline: `(page index, title, level)` of every outline (bookmark) entry, in outline order; level 0 is
        the top. An entry's parents are the nearest entries before it of each lower level.
    :param page_count: Pages in the document.
    """
    located: list[tuple[int, str, list[str]]] = []
    stack: list[tuple[int, str]] = []  # (level, heading) of the open ancestors
    for index, title, level in outline:
        heading = clean_heading(title)
        if not heading:
            continue
        above = _nest(stack, level, heading)  # pushed even off the pages: it is still the parent of what follows
        if 0 <= index < page_count:
            located.append((index, heading, above))
    # stable: entries of one page keep their outline order
    entries = sorted(located, key=lambda entry: entry[0])[:MAX_MARKS]
    result: list[PageSections] = []
    current: str | None = None
    parents: list[str] = []
    position = 0
    for page in range(page_count):
        marks: list[dict[str, Any]] = []
        while position < len(entries) and entries[position][0] == page:
            _, heading, above = entries[position]
            marks.append({"heading": heading, "parents": above} if above else {"heading": heading})
            position += 1
        result.append((current, parents, marks))
        if marks:
            current, parents = marks[-1]["heading"], list(marks[-1].get("parents", []))
    return result


def _nest(stack: list[tuple[int, str]], level: int, heading: str) -> list[str]:
    """The nearest (at most `_MAX_PARENTS`) headings above `heading`, at `level` (lower is outer), given `stack`, the
    `(level, heading)` of the headings still open before it, in order; `stack` then ends with this heading."""
    while stack and stack[-1][0] >= level:
        stack.pop()
    parents = [parent for _, parent in stack][-_MAX_PARENTS:]
    stack.append((level, heading))
    return parents


def html_marks(html: str) -> list[dict[str, Any]]:
    """
    The marks of an HTML page's `<h1>`-`<h6>` headings: each anchored to the first words that follow it, with the
    enclosing headings of lower levels as its `parents`.

    Main-text extractors (trafilatura) often drop headings; the words after one usually survive. Headings with too
    little text after them get no mark. Never raises on odd markup: a page that cannot be parsed has no marks.
    """
    try:
        root = lxml.html.fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    marks: list[dict[str, Any]] = []
    stack: list[tuple[int, str]] = []  # (level, heading) of the open enclosing headings
    for count, element in enumerate(root.iter(*_HEADING_TAGS)):
        if count >= MAX_MARKS:  # bounded work on a page made of headings
            break
        heading = clean_heading(element.text_content())
        if not heading:
            continue
        parents = _nest(stack, int(str(element.tag)[1]), heading)
        anchor = normalize(_following_text(element))[:ANCHOR_CHARS]
        if len(anchor) >= MIN_ANCHOR_CHARS:
            mark: dict[str, Any] = {"heading": heading, "anchor": anchor}
            if parents:
                mark["parents"] = parents
            marks.append(mark)
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


def dump_marks(marks: Sequence[Any]) -> str:
    """`section_marks` (or `section_parents`) as stored in meta: a JSON array."""
    return json.dumps(list(marks), ensure_ascii=False, separators=(",", ":"))


def marks_of(meta: dict[str, Any]) -> Sequence[dict[str, Any]]:
    """The well-formed marks in `meta["section_marks"]` (a JSON array or a list; anything else is ignored)."""
    return [
        mark
        for mark in _json_list(meta.get("section_marks"))
        if isinstance(mark, dict) and isinstance(mark.get("heading"), str)
    ]


def parents_of(value: Any) -> list[str]:
    """The headings in a `parents` list or a `section_parents` JSON array (anything malformed counts as none)."""
    return [parent for parent in _json_list(value) if isinstance(parent, str) and parent.strip()]


def _json_list(value: Any) -> list[Any]:
    """`value` when it is a list, the list a JSON string holds, else an empty list."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []
