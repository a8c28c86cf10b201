"""Line-end hyphens PDFium marks: joined when they break a word, kept when the word has them."""

from __future__ import annotations

import pytest
from haystack.dataclasses import ByteStream

from app.testing.crafted_pdfs import text_pdf
from components.converters.dehyphenation import dehyphenate, mark_line_end_hyphens
from components.converters.pdf_to_document import PdfToDocument

M = "\ufffe"


def _one(text: str, lexicon: str | None = "en") -> str:
    return dehyphenate([text], lexicon=lexicon)[0]


def test_pages_without_markers_are_returned_as_they_are() -> None:
    pages = ["no break here", "nor - here"]
    assert dehyphenate(pages) is pages


def test_the_form_the_document_writes_elsewhere_wins() -> None:
    pages = [f"Configure with --with{M}blas.", "Later: --with-blas and --with-blas again."]
    assert dehyphenate(pages, lexicon=None)[0] == "Configure with --with-blas."
    pages = [f"The reposi{M}tory holds it.", "A repository is a folder."]
    assert dehyphenate(pages, lexicon=None)[0] == "The repository holds it."


def test_parts_of_longer_hyphenated_names_count_as_written() -> None:
    pages = [f"Packages are byte{M}compiled.", "Use --disable-byte-compiled-packages to stop it."]
    assert dehyphenate(pages, lexicon=None)[0] == "Packages are byte-compiled."


def test_a_name_of_many_parts_counts_each_pair_of_neighbours() -> None:
    chain = "-".join(["x"] * 5000 + ["with", "blas"] + ["y"] * 5000)
    pages = [f"Configure with --with{M}blas.", f"A long name: {chain}."]
    assert dehyphenate(pages, lexicon=None)[0] == "Configure with --with-blas."


def test_the_more_frequent_form_wins_and_case_does_not_matter() -> None:
    pages = [f"the data{M}base", "a database, the Database, one data-base"]
    assert dehyphenate(pages, lexicon=None)[0] == "the database"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"non-UTF{M}8 locales", "non-UTF-8 locales"),  # a digit after it
        (f"UTF{M}32 text", "UTF-32 text"),
        (f"ttf-mscorefonts{M}installer", "ttf-mscorefonts-installer"),  # a part that follows a hyphen
        (f"the Marquardt{M}Levenberg method", "the Marquardt-Levenberg method"),  # a capital after lower case
        (f"DBMS{M}specific code", "DBMS-specific code"),  # after an abbreviation
        (f"a ({M}) sign", "a (-) sign"),  # not between word parts: the printed hyphen stays
    ],
)
def test_characters_keep_the_hyphen(text: str, expected: str) -> None:
    assert _one(text, lexicon=None) == expected


def test_the_word_list_joins_words_and_keeps_compounds() -> None:
    assert _one(f"re{M}spectively and tempera{M}ture") == "respectively and temperature"
    assert _one(f"a time{M}consuming step on Debian{M}based systems") == (
        "a time-consuming step on Debian-based systems"
    )


def test_a_hyphen_hanging_before_a_conjunction_keeps_its_space() -> None:
    assert _one(f"pre{M}or post-Euro prices") == "pre- or post-Euro prices"
    assert _one(f"Ein{M}und Ausgang", lexicon="de") == "Ein- und Ausgang"
    assert _one(f"her hus{M}band and the doct{M}or said") == "her husband and the doctor said"  # known joined words
    assert _one(f"pre{M}or.") == "preor."  # a conjunction only as a whole word before a space
    assert _one(f"pre{M}or post", lexicon=None) == "preor post"  # no word list: no conjunctions either


def test_unknown_words_are_joined() -> None:
    assert _one(f"an isosur{M}face") == "an isosurface"


def test_without_a_word_list_undecided_breaks_are_joined() -> None:
    assert _one(f"a time{M}consuming step", lexicon=None) == "a timeconsuming step"


def test_both_markers_pdfium_writes_are_decided() -> None:
    assert _one(f"re\x02spectively, non-UTF{M}8") == "respectively, non-UTF-8"


def test_pypdf_line_end_hyphens_are_decided_like_pdfium_markers() -> None:
    text = mark_line_end_hyphens("yours re-\nspectively, on Debian-\nbased systems,\nnot a -\nlist or a-\n- dash")
    assert dehyphenate([text])[0] == "yours respectively, on Debian-based systems,\nnot a -\nlist or a-\n- dash"


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["pypdfium2", "pypdf"])
def test_pdf_converter_keeps_real_hyphens_at_line_ends(backend: str) -> None:
    pdf = text_pdf(
        [
            [
                "Run the configure script with --with-",
                "blas to use the system BLAS, or the default and",
                "yours re-",
                "spectively. Users of Debian-",
                "based systems install it too.",
            ],
            ["Give --with-blas once."],
        ]
    )
    source = ByteStream(data=pdf, meta={"file_name": "hyphens.pdf"})
    documents = PdfToDocument(backend=backend, ocr="off").run(sources=[source])["documents"]
    text = " ".join(doc.content for doc in documents)
    assert "--with-blas to use" in text
    assert "Users of Debian-based systems" in text
    assert "yours respectively." in text
    assert "\x02" not in text and M not in text
