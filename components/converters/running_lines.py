"""Running headers and footers: the lines a paged document repeats at the top or bottom of its pages.

A printed manual starts every page with a line such as "Debian Reference 139 / 233", "52 gnuplot 5.4" or
"Chapter 2: R Basics 7". Kept, that line lands in the first chunk of every page: it is embedded and keyword-indexed
with the chunk and shown to the model as if it were part of the passage (which then quotes it as an answer).

A page's first or last non-empty line is a running line when it holds a number that is the page's printed number
(the number minus the page's index is the same from page to page) and either
* the same line, every run of digits read as one placeholder, opens (or closes) at least `min_pages` pages of the file
  with that number following the pages ("Debian Reference # / #", "# gnuplot #.#", a bare page number), or
* it starts or ends with that number, which follows the pages at that edge on at least `min_pages` pages and on a
  quarter of the pages with text ("Chapter 3: Objects, their modes and attributes 15" on page 21, one of the two
  pages of a short chapter, which the first rule does not see three times). The share keeps out numbers that follow
  the pages by chance for a while: footnote numbers, the last entry of each page of a table of contents.

A line without a number is never a running line: a heading such as "Syntax:" repeated at page ends is text; nor is
a line whose numbers do not follow the pages: the rows of a table that runs over several pages
("2024-01-05 Payment 120.00") are text. The chapter a header names goes with it: `ContextualHeader` names the
latest heading of the PDF's outline, often a subsection.

Haystack's `DocumentCleaner(remove_repeated_substrings=True)` does this for one Document whose pages are separated by
form feeds, by n-gram frequency; the PDF converter here emits a Document per page, so it works on the page texts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

#: A line repeated at a page edge on at least this many pages of a file is a running line (when it holds a number).
MIN_PAGES = 3
#: ... and, for the page-number rule, on at least this share of the pages with text.
MIN_PAGE_NUMBER_SHARE = 0.25
#: Longer lines are text, not a header or footer.
MAX_LINE_CHARS = 120

_DIGITS = re.compile(r"\d+")
_LEADING_NUMBER = re.compile(r"^(\d{1,4})(?!\d)")
_TRAILING_NUMBER = re.compile(r"(?<!\d)(\d{1,4})$")
_SPACES = re.compile(r"\s+")


def line_key(line: str) -> str | None:
    """The line with each run of digits as NUL and whitespace collapsed; None when it cannot be a running line."""
    text = _SPACES.sub(" ", line.strip())
    if not text or len(text) > MAX_LINE_CHARS:
        return None
    if not _DIGITS.search(text):
        return None
    key = _DIGITS.sub("\x00", text)  # a character no text line holds, so a "#" of the text stays itself
    if key != "\x00" and not any(char.isalpha() for char in key):
        return None  # numbers and punctuation only ("1, 2, 3,"): a row of data, unless it is one bare number
    return key


def _page_number_marks(line: str, page: int) -> list[tuple[str, int]]:
    """(where, offset) of a number that starts or ends the line: offset = number - page index."""
    text = line.strip()
    marks = []
    if match := _LEADING_NUMBER.search(text):
        marks.append(("start", int(match.group(1)) - page))
    if match := _TRAILING_NUMBER.search(text):
        marks.append(("end", int(match.group(1)) - page))
    return marks


def _edges(lines: list[str]) -> tuple[int, int] | None:
    """Indices of the first and the last non-empty line (None for a page without text)."""
    filled = [index for index, line in enumerate(lines) if line.strip()]
    return (filled[0], filled[-1]) if filled else None


def _running(lines: list[str | None], min_pages: int) -> list[bool]:
    """For the line at one edge (top or bottom) of every page (None: no text): whether it runs through the file."""
    # rule 1: (shape, which number, number - page index); rule 2: (start or end, number - page index)
    shape_marks: list[set[tuple[str, int, int]]] = []
    edge_marks: list[set[tuple[str, int]]] = []
    for page, line in enumerate(lines):
        key = line_key(line) if line is not None else None
        if line is None or key is None:
            shape_marks.append(set())
            edge_marks.append(set())
            continue
        numbers = [int(number) for number in _DIGITS.findall(line)]
        shape_marks.append({(key, position, number - page) for position, number in enumerate(numbers)})
        edge_marks.append(set(_page_number_marks(line, page)))
    shape_counts = Counter(mark for marks in shape_marks for mark in marks)
    edge_counts = Counter(mark for marks in edge_marks for mark in marks)
    min_edge = max(min_pages, math.ceil(MIN_PAGE_NUMBER_SHARE * sum(line is not None for line in lines)))
    return [
        any(shape_counts[mark] >= min_pages for mark in shapes) or any(edge_counts[mark] >= min_edge for mark in edges)
        for shapes, edges in zip(shape_marks, edge_marks, strict=True)
    ]


def remove_running_lines(texts: Sequence[str], *, min_pages: int = MIN_PAGES) -> list[str]:
    """
    The page texts without their running headers and footers.

    :param texts: one text per page of one file, in page order.
    :param min_pages: how many pages must show the same running line (or page-number offset) at an edge.
    :returns: the texts, each without a first and a last line that run through the file; other lines are unchanged.
    """
    pages = [text.splitlines(keepends=True) for text in texts]
    edges = [_edges(lines) for lines in pages]
    top = _running([lines[edge[0]] if edge else None for lines, edge in zip(pages, edges, strict=True)], min_pages)
    bottom = _running([lines[edge[1]] if edge else None for lines, edge in zip(pages, edges, strict=True)], min_pages)
    result = []
    for page, (text, lines, edge) in enumerate(zip(texts, pages, edges, strict=True)):
        drop = set()
        if edge is not None and top[page]:
            drop.add(edge[0])
        if edge is not None and bottom[page]:
            drop.add(edge[1])
        result.append("".join(line for index, line in enumerate(lines) if index not in drop) if drop else text)
    return result
