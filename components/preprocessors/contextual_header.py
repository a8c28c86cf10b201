"""Give every chunk a short header saying where it comes from: document title, section heading, page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from haystack import Document, component

from components.converters.sections import MIN_ANCHOR_CHARS, marks_of, normalize, parents_of
from components.validation import check_bool, check_int

_DEFAULT_GROUP_BY = ["document_id", "file_path", "file_name", "page", "__level"]
#: A section: its heading and the headings above it (outermost first).
_Section = tuple[str, tuple[str, ...]]
#: How many unmatched marks a search looks past the last one found (marks are in document order).
_LOOKAHEAD = 8


def _line_starts(text: str) -> list[tuple[int, str]]:
    starts: list[tuple[int, str]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        starts.append((offset, line))
        offset += len(line)
    return starts


def _heading_line(lines: list[tuple[int, str]], heading: str, start: int) -> int | None:
    """Offset of the first line at or after `start` that is `heading`, optionally after its section number."""
    wanted = normalize(heading)
    if not wanted:
        return None
    for offset, line in lines:
        if offset < start:
            continue
        text = normalize(line)
        if text == wanted or (text.endswith(wanted) and text[: len(text) - len(wanted)].isdigit()):
            return offset
        stripped = line.strip()
        if stripped.lower().startswith("chapter ") and normalize(stripped.split(None, 2)[-1]) == wanted:
            return offset
    return None


def _anchor(text: str, anchor: str, start: int) -> int | None:
    """Offset in `text` (at or after `start`) where the normalized `anchor` begins, if it does."""
    if len(anchor) < MIN_ANCHOR_CHARS:
        return None
    positions = [i for i, char in enumerate(text) if char.isalnum()]
    folded = "".join(text[i].casefold() for i in positions)
    # casefold may change lengths ("ß" -> "ss"); fall back to the approximate position then
    exact = len(folded) == len(positions)
    found = folded.find(anchor)
    while found != -1:
        offset = positions[found] if exact else min(len(text) - 1, found)
        if offset >= start:
            return offset
        found = folded.find(anchor, found + 1)
    return None


@component
class ContextualHeader:
    """
    Sets meta `context_header` (document title, the section's parent headings, its heading and the page, joined by
    `separator`) and `section` on every chunk, and drops `section_marks` and `section_parents`.

    The header is embedded and keyword-indexed with the chunk (`meta_fields_to_embed: [context_header]` on the
    document embedder, `keyword_meta_fields: [context_header]` on the store), while the passage shown and quoted
    stays the chunk's own text. It names what a chunk alone often does not: which document and section it is from.

    Sections come from the converters' `section` / `section_marks` meta (`components.converters.sections`: PDF
    bookmarks, HTML headings). Chunks arrive in document order (as a splitter emits them); per source (the
    `group_by` fields: file, page and, after `HierarchicalDocumentSplitter`, level) the marks are found in order in
    the chunks' text, and each chunk is named after the section that covers most of it, with up to
    `parent_headings` of the headings above that section (its chapter, in a PDF outline or `<h1>`-`<h6>`): a
    manual's many "Examples" sections say whose examples they are. Without marks, the header is the title and page.

    ```python
    header = ContextualHeader(parent_headings=1)
    docs = header.run(documents=chunks)["documents"]
    docs[0].meta["context_header"]
    # "Debian Reference \u203a Unix-like filesystem \u203a Filesystem permissions \u203a page 35"
    ```
    """

    def __init__(
        self,
        *,
        separator: str = " \u203a ",
        include_page: bool = True,
        max_chars: int = 300,
        group_by: list[str] | None = None,
        parent_headings: int = 0,
    ) -> None:
        """
        :param separator: Between the header's parts (default " \u203a ", a single right-pointing angle quote).
        :param include_page: End the header with "page N" when the chunk has a `page`.
        :param max_chars: Longest header; longer ones are cut (a header is not meant to crowd the chunk out of the
            embedder's `max_length`).
        :param group_by: Meta fields that identify one source's sequence of chunks (default: `document_id`,
            `file_path`, `file_name`, `page`, `__level`); a missing field counts as `None`.
        :param parent_headings: How many of the headings above the section (the nearest ones) the header names
            before it; 0 names the section alone.
        :raises ValueError: on an invalid argument.
        """
        if not isinstance(separator, str) or not separator:
            raise ValueError("separator must be a non-empty string")
        self.separator = separator
        self.include_page = check_bool(include_page, "include_page")
        self.max_chars = check_int(max_chars, "max_chars", minimum=1)
        fields = list(_DEFAULT_GROUP_BY if group_by is None else group_by)
        if not fields or not all(isinstance(field, str) and field for field in fields):
            raise ValueError("group_by must be a non-empty list of meta field names")
        self.group_by = fields
        self.parent_headings = check_int(parent_headings, "parent_headings", minimum=0)

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        :param documents: Chunks, in the order the splitter emitted them.
        :returns: `documents`: copies with `context_header` and `section` set and `section_marks` and
            `section_parents` removed.
        """
        # per source: (section in effect after the last chunk, index of the next mark to look for)
        states: dict[tuple[Any, ...], tuple[_Section | None, int]] = {}
        parsed: dict[str, Sequence[dict[str, Any]]] = {}  # every chunk of a source carries the same JSON string
        out: list[Document] = []
        for doc in documents:
            meta = dict(doc.meta)
            raw = meta.get("section_marks")
            if isinstance(raw, str):
                if raw not in parsed:
                    parsed[raw] = marks_of(meta)
                marks = parsed[raw]
            else:
                marks = marks_of(meta)
            meta.pop("section_marks", None)
            parents = tuple(parents_of(meta.pop("section_parents", None)))
            key = tuple(_hashable(meta.get(field)) for field in self.group_by)
            start = meta.get("section")
            initial = (start, parents) if isinstance(start, str) else None
            current, next_mark = states.get(key, (initial, 0))
            section, current, next_mark = self._section(doc.content or "", marks, current, next_mark)
            states[key] = (current, next_mark)
            if section:
                meta["section"] = section[0]
            else:
                meta.pop("section", None)
            meta["context_header"] = self._header(meta, section)
            out.append(replace(doc, meta=meta))
        return {"documents": out}

    @staticmethod
    def _section(
        text: str, marks: Sequence[dict[str, Any]], current: _Section | None, next_mark: int
    ) -> tuple[_Section | None, _Section | None, int]:
        """(the section covering most of `text`, the section in effect at its end, the next mark to look for)."""
        lines = _line_starts(text)
        spans: list[tuple[int, _Section | None]] = [(0, current)]
        position = 0
        index = next_mark
        misses = 0
        while index < len(marks) and misses < _LOOKAHEAD:
            mark = marks[index]
            anchor = mark.get("anchor")
            if isinstance(anchor, str):
                found = _anchor(text, anchor, position)
            else:
                found = _heading_line(lines, mark["heading"], position)
            index += 1
            if found is None:
                misses += 1
                continue
            misses = 0
            position = found
            next_mark = index
            spans.append((found, (mark["heading"], tuple(parents_of(mark.get("parents"))))))
        coverage: dict[_Section | None, int] = {}
        for (start, section), (end, _) in zip(spans, [*spans[1:], (len(text), None)], strict=True):
            coverage[section] = coverage.get(section, 0) + (end - start)
        best = max(coverage.items(), key=lambda item: item[1])[0] if text else current
        return best, spans[-1][1], next_mark

    def _header(self, meta: dict[str, Any], section: _Section | None) -> str:
        parts: list[str] = []
        title = meta.get("title")
        if isinstance(title, str) and title.strip():
            parts.append(" ".join(title.split()))
        if section:
            heading, parents = section
            kept = parents[max(0, len(parents) - self.parent_headings) :] if self.parent_headings else ()
            named = [*kept, heading]
            for part in named:  # a heading equal to the title or to the part before it is not repeated
                if not any(normalize(part) == normalize(previous) for previous in parts[-1:] + parts[:1]):
                    parts.append(part)
        page = meta.get("page")
        if self.include_page and isinstance(page, int) and not isinstance(page, bool):
            parts.append(f"page {page}")
        return self.separator.join(parts)[: self.max_chars]


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
