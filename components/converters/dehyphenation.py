"""Hyphens at line ends that PDFium marks: a word broken across two lines is joined, a hyphenated one keeps its hyphen.

Not a component. When a line ends with "-" and the next one goes on with a word, PDFium drops the line break and
writes a marker instead of the hyphen (U+FFFE, or U+0002 in some builds). The marker does not tell a word broken by
hyphenation (`re-` / `spectively`) from a name or an option whose own hyphen falls at the line end (`Debian-` /
`based`, `--with-` / `blas`, `net-` / `tools`). Joining them all, as a plain removal of the marker does, turns
commands and package names into words that exist nowhere (`--withblas`). Each marker is decided, first rule that
applies:

1. **The document**: the hyphenated form (`with-blas`) or the joined one (`respectively`), whichever the document
   writes more often on one line (case-insensitive, parts of longer hyphenated names counted).
2. **Characters**: the hyphen stays when either side is not a letter (`UTF-` / `8`), when the left part is itself
   after a hyphen (`ttf-mscorefonts-` / `installer`), when a capital follows a lower-case letter
   (`Marquardt-` / `Levenberg`), or after an all-capitals abbreviation (`DBMS-` / `specific`).
3. **A word list** (pyspellchecker's, for `lexicon`): joined when the joined word is in it (`tempera-` / `ture`),
   kept when both parts are (`time-` / `consuming`).
4. Otherwise joined: a syllable break of a word the list does not know.

Before rules 2 to 4, a hyphen left hanging before a conjunction (`pre-` / `or post-Euro`, `Ein-` / `und Ausgang`) is
kept with a space when the joined word is not in the word list: `pre- or post-Euro`. The conjunctions are listed for
English, German and Dutch (`SUSPENDING_CONJUNCTIONS`); other word lists and `lexicon=None` skip this rule.

pypdf keeps the hyphen and the line break; `mark_line_end_hyphens` turns them into the marker first, so both
backends give the same words. The word list is loaded only when a marker gets to rule 3, once per process (English:
~0.3 s, ~30 MB).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable

from components.text.lexicon import load_lexicon

MARKERS = "\ufffe\x02"
SUSPENDING_CONJUNCTIONS: dict[str, frozenset[str]] = {
    "en": frozenset({"and", "or", "nor"}),
    "de": frozenset({"und", "oder", "bzw", "sowie"}),
    "nl": frozenset({"en", "of"}),
}
_BREAK = re.compile(rf"(\w*)[{MARKERS}](\w*)")
_TOKEN = re.compile(r"\w+(?:-\w+)*")
_LINE_END_HYPHEN = re.compile(r"(?<=\w)-\r?\n(?=\w)")


def mark_line_end_hyphens(text: str) -> str:
    """`text` with each hyphen that ends a line before a word (`re-\\nspectively`, as pypdf extracts it) replaced
    by PDFium's marker, so that `dehyphenate` decides it the same way."""
    return _LINE_END_HYPHEN.sub(MARKERS[0], text)


def dehyphenate(pages: list[str], *, lexicon: str | None = "en") -> list[str]:
    """
    `pages` (the texts of one document) with every line-end marker replaced by "-" or removed.

    :param pages: The pages' texts as PDFium extracted them.
    :param lexicon: The word list for rule 3 (a pyspellchecker language), or None to skip that rule.
    :returns: The texts, in order, without markers.
    """
    if not any(marker in page for page in pages for marker in MARKERS):
        return pages
    written = _written_forms(_BREAK.sub(" ", page) for page in pages)
    decide = _Decider(written, lexicon)
    return [_BREAK.sub(decide, page) for page in pages]


def _written_forms(texts: Iterable[str]) -> Counter[str]:
    """How often each form a marker can be decided by is written in `texts`, lower-cased: each word, alone or as a
    part of a hyphenated name, and each pair of neighbouring parts (`byte-compiled` in
    `disable-byte-compiled-packages`). Longer runs are never asked for, so a name of n parts costs n, not n²."""
    counts: Counter[str] = Counter()
    for text in texts:
        for token in _TOKEN.findall(text.lower()):
            parts = token.split("-")
            counts.update(parts)
            counts.update(f"{left}-{right}" for left, right in itertools.pairwise(parts))
    return counts


class _Decider:
    """The replacement for one marker match: "-" kept between the parts, or the parts joined."""

    def __init__(self, written: Counter[str], lexicon: str | None) -> None:
        self.written = written
        self.lexicon = lexicon

    def __call__(self, match: re.Match[str]) -> str:
        left, right = match.group(1), match.group(2)
        text = match.string
        after_hyphen = match.start() > 0 and text[match.start() - 1] == "-"
        before_space = match.end() < len(text) and text[match.end()].isspace()
        return f"{left}{self.separator(left, right, after_hyphen=after_hyphen, before_space=before_space)}{right}"

    def separator(self, left: str, right: str, *, after_hyphen: bool = False, before_space: bool = False) -> str:
        """What replaces the marker between `left` and `right`: "-", "" (joined) or "- " (a suspended hyphen)."""
        if not left or not right:  # not between two word parts: the printed hyphen stays
            return "-"
        joined, hyphenated = f"{left}{right}".lower(), f"{left}-{right}".lower()
        as_joined, as_hyphenated = self.written[joined], self.written[hyphenated]
        if as_joined != as_hyphenated:
            return "-" if as_hyphenated > as_joined else ""
        if before_space and self._suspends(joined, right):
            return "- "
        return "-" if self._keeps_hyphen(left, right, joined, after_hyphen=after_hyphen) else ""

    def _suspends(self, joined: str, right: str) -> bool:
        if self.lexicon is None or right.lower() not in SUSPENDING_CONJUNCTIONS.get(self.lexicon, frozenset()):
            return False
        return joined not in load_lexicon(self.lexicon)

    def _keeps_hyphen(self, left: str, right: str, joined: str, *, after_hyphen: bool) -> bool:
        if not left[-1].isalpha() or not right[0].isalpha() or after_hyphen:
            return True
        if (left[-1].islower() and right[0].isupper()) or (len(left) > 1 and left.isupper() and right[0].islower()):
            return True
        if self.lexicon is not None:
            words = load_lexicon(self.lexicon)
            if joined in words:
                return False
            if left.lower() in words and right.lower() in words:
                return True
        return False
