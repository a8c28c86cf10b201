"""Content words and sentence units shared by the selector and the answerability gate."""

from __future__ import annotations

import itertools

import pytest

from components.text.terms import content_terms, idf_weights, split_units, stem


def test_content_terms_drop_stop_words_and_meet_across_suffixes():
    assert content_terms("How do I configure the proxy?") == ["configure", "proxy"]
    assert stem("configuring") == stem("configured") == stem("configures") == "configur"
    assert "apt-mark" in content_terms("Use apt-mark hold.")


def test_rare_terms_weigh_more():
    units = [{"apt", "hold"}, {"apt", "install"}, {"apt", "remove"}]
    idf = idf_weights(["apt", "hold"], units)
    assert idf["hold"] > idf["apt"]


@pytest.mark.parametrize(
    "text",
    [
        "One sentence. Another one! A third? End",
        "Heading\nA long line of prose that wraps over the page width and goes on and on,\ncontinuing here.\n$ ls -l\n",
        "x" * 1000,
        "",
        "  \n\n  ",
    ],
)
def test_units_cover_the_text_in_order(text):
    units = split_units(text, max_chars=300)
    assert all(u.text == text[u.start : u.end] for u in units)
    assert all(len(u.text) <= 300 for u in units)
    assert all(a.end <= b.start for a, b in itertools.pairwise(units))
    if text.strip():
        assert "".join(u.text for u in units).strip() == text.strip()


def test_short_lines_and_sentences_are_units():
    units = [u.text.strip() for u in split_units("Tip\nRun it twice. Then stop.\n$ apt-mark hold foo\n")]
    assert units == ["Tip", "Run it twice.", "Then stop.", "$ apt-mark hold foo"]
