"""pyspellchecker's bundled word lists, loaded once per process: everyday words of a language (no download).

Not a component. The answerability gate tells everyday words from names with it; the PDF converter decides with it
whether a hyphen at a line end breaks a word or belongs to it.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def lexicons() -> tuple[str, ...]:
    """The languages whose word list pyspellchecker bundles (what a `lexicon` argument accepts)."""
    from spellchecker import SpellChecker

    return tuple(sorted(SpellChecker.languages()))


@lru_cache(maxsize=4)
def load_lexicon(language: str) -> frozenset[str]:
    """The words of pyspellchecker's frequency list for `language` (bundled with the package, no download)."""
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language=language, distance=1).word_frequency.dictionary)


def check_lexicon(value: object, name: str = "lexicon") -> str | None:
    """`value` when it names a bundled word list or is None.

    :raises ValueError: for any other value.
    """
    if value is None:
        return None
    if not isinstance(value, str) or value not in lexicons():
        raise ValueError(f"{name} must be one of {list(lexicons())} or None, got {value!r}")
    return value
