"""Content words, sentence units and rare-term weights shared by the context selector and the answerability gate.

Not a component. Everything here is deterministic, language-light (English stop words) and cheap: a few hundred
sentences per query.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9_][a-z0-9_+#.$/-]*[a-z0-9_+#]|[a-z0-9]", re.IGNORECASE)
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being below between
    both but by can cannot could did do does doing done down during each either else few for from further get gets
    got had has have having he her here hers him his how i if in into is it its itself just like make makes many may
    me might more most must my no nor not now of off on once one only or other our out over own same shall she should
    so some such than that the their them then there these they this those through to too under until up upon us use
    used uses using very via was way we were what when where whether which while who whom whose why will with within
    without would you your yours want need needs tell show give find know way ways thing things something anything
    possible there's it's what's i'm can't don't doesn't
    """.split()
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "es", "ed", "ly", "s")


def stem(word: str) -> str:
    """A crude suffix strip so `configuring`, `configured` and `configures` meet (never below 4 characters)."""
    word = word.lower().strip(".-/")
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def content_terms(text: str) -> list[str]:
    """Stems of the words of `text` that carry content (stop words and 1-character words out), in order."""
    terms = []
    for match in _WORD.finditer(text):
        word = match.group(0).lower()
        if word in STOPWORDS or len(word) < 2:
            continue
        terms.append(stem(word))
    return terms


def idf_weights(terms: Iterable[str], units: list[set[str]]) -> dict[str, float]:
    """Inverse document frequency of each term over `units` (sets of stems): a term in few units weighs more."""
    total = len(units)
    return {t: math.log(1.0 + (total + 1) / (1 + sum(t in u for u in units))) for t in set(terms)}


@dataclass(frozen=True)
class Unit:
    """A sentence (or a line of a table or listing) of a passage: `text[start:end]` of the passage's content."""

    start: int
    end: int
    text: str


_BREAK = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=\S)|\n\s*\n|\n(?=\s*(?:[-*•$#>]|\d+[.)]\s|[A-Z][A-Za-z ]{0,40}:))")


def split_units(text: str, *, max_chars: int = 400, short_line: int = 50) -> list[Unit]:
    """Sentences of `text`, with lines of tables, listings and headings (a line shorter than `short_line`) on
    their own; a unit longer than `max_chars` is cut at a newline or space. The units cover `text` in order."""
    cuts = {0, len(text)}
    for match in _BREAK.finditer(text):
        cuts.add(match.end())
    start = 0
    for line in text.split("\n")[:-1]:  # a short line (heading, table row, command) ends its unit
        end = start + len(line) + 1
        if len(line.strip()) < short_line:
            cuts.add(end)
        start = end
    bounds = sorted(cuts)
    units: list[Unit] = []
    for begin, end in itertools.pairwise(bounds):
        while end - begin > max_chars:
            window = text[begin : begin + max_chars]
            cut = max(window.rfind("\n"), window.rfind(" "))
            stop = begin + cut + 1 if cut > max_chars // 2 else begin + max_chars
            units.append(Unit(begin, stop, text[begin:stop]))
            begin = stop
        if text[begin:end].strip():
            units.append(Unit(begin, end, text[begin:end]))
        elif units:  # whitespace only: glue to the previous unit so the units still cover the text
            last = units[-1]
            units[-1] = Unit(last.start, end, text[last.start : end])
    return units
