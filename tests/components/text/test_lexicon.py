"""The bundled word lists: which languages, loaded once, and the check of a `lexicon` argument."""

from __future__ import annotations

import pytest
from spellchecker import SpellChecker

from components.text.lexicon import check_lexicon, lexicons, load_lexicon


def test_lexicons_are_the_languages_pyspellchecker_bundles() -> None:
    assert set(lexicons()) == set(SpellChecker.languages()) and "en" in lexicons()


def test_load_lexicon_is_loaded_once_and_holds_everyday_words() -> None:
    words = load_lexicon("en")
    assert load_lexicon("en") is words
    assert {"respectively", "temperature", "time", "consuming"} <= words
    assert "isosurface" not in words


@pytest.mark.parametrize("value", [None, "en", "de"])
def test_check_lexicon_accepts_a_bundled_language_or_none(value: str | None) -> None:
    assert check_lexicon(value) == value


@pytest.mark.parametrize("value", ["english", "", 1])
def test_check_lexicon_names_the_argument_it_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="hyphen_lexicon must be one of"):
        check_lexicon(value, "hyphen_lexicon")
