"""ContextualHeader: "title > section > page" for every chunk, from the converters' section marks."""

from __future__ import annotations

import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.converters.sections import dump_marks, normalize
from components.preprocessors.contextual_header import ContextualHeader

SEP = " \u203a "


def _header(docs: list[Document], **kwargs: object) -> list[Document]:
    return ContextualHeader(**kwargs).run(documents=docs)["documents"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"separator": ""},
        {"include_page": "yes"},
        {"max_chars": 0},
        {"group_by": []},
        {"group_by": [""]},
        {"parent_headings": -1},
        {"parent_headings": True},
    ],
)
def test_invalid_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ContextualHeader(**kwargs)


def test_round_trips() -> None:
    component = ContextualHeader(
        separator=" / ", include_page=False, max_chars=80, group_by=["file_name"], parent_headings=2
    )
    data = component_to_dict(component, "header")
    assert component_to_dict(component_from_dict(ContextualHeader, data, "header"), "header") == data


def test_title_and_page_without_sections() -> None:
    docs = [
        Document(content="text", meta={"title": "Debian  Reference", "page": 3}),
        Document(content="text", meta={"file_name": "a.txt"}),
    ]
    out = _header(docs)
    assert out[0].meta["context_header"] == f"Debian Reference{SEP}page 3"
    assert out[1].meta["context_header"] == ""
    assert _header(docs[:1], include_page=False)[0].meta["context_header"] == "Debian Reference"
    assert out[0].content == "text" and "context_header" not in docs[0].meta, "content kept, inputs not modified"


def test_pdf_heading_lines_with_section_numbers_start_sections() -> None:
    meta = {
        "title": "Debian Reference",
        "page": 30,
        "section": "The shell prompt",
        "section_marks": [{"heading": "The shell prompt under GUI"}, {"heading": "The root account"}],
    }
    chunks = [
        Document(content="Debian Reference 2 / 233\nNow you are in the shell.\n" + "x " * 200, meta=meta),
        Document(content="more of it\n1.1.2 The shell prompt under GUI\n" + "gui " * 200, meta=meta),
        Document(content="still GUI " * 20 + "\n1.1.3 The root account\nThe root account is the superuser.", meta=meta),
        Document(content="Chapter 2 The root account again is not a new mark", meta=meta),
    ]
    out = _header(chunks)
    assert [doc.meta["section"] for doc in out] == [
        "The shell prompt",  # carried from the previous page
        "The shell prompt under GUI",  # begins near the start: it covers most of the chunk
        "The shell prompt under GUI",  # the root account begins near the end
        "The root account",  # in effect since the previous chunk
    ]
    assert out[1].meta["context_header"] == f"Debian Reference{SEP}The shell prompt under GUI{SEP}page 30"
    assert all("section_marks" not in doc.meta for doc in out)


def test_parent_headings_name_the_sections_chapter() -> None:
    meta = {
        "title": "gnuplot",
        "page": 200,
        "section": "Fill",
        "section_parents": dump_marks(["Commands", "Set-show", "Style"]),
        "section_marks": dump_marks([{"heading": "Examples", "parents": ["Commands", "Set-show", "Label"]}]),
    }
    chunks = [
        Document(content="set style fill solid\n" + "f " * 100, meta=meta),
        Document(content="Examples\nset label 1 'x' at 1,2\n" + "e " * 100, meta=meta),
    ]
    assert [doc.meta["context_header"] for doc in _header(chunks, parent_headings=2)] == [
        SEP.join(["gnuplot", "Set-show", "Style", "Fill", "page 200"]),
        SEP.join(["gnuplot", "Set-show", "Label", "Examples", "page 200"]),
    ]
    out = _header(chunks)  # the default names the section alone
    assert [doc.meta["context_header"] for doc in out] == [
        SEP.join(["gnuplot", "Fill", "page 200"]),
        SEP.join(["gnuplot", "Examples", "page 200"]),
    ]
    assert [doc.meta["section"] for doc in out] == ["Fill", "Examples"]
    assert all("section_parents" not in doc.meta and "section_marks" not in doc.meta for doc in out)
    deep = _header(chunks[:1], parent_headings=9)[0].meta["context_header"]
    assert deep == SEP.join(["gnuplot", "Commands", "Set-show", "Style", "Fill", "page 200"])


def test_a_parent_equal_to_the_title_or_to_the_heading_before_it_is_not_repeated() -> None:
    meta = {
        "title": "R Data Import/Export",
        "section_marks": [{"heading": "Introduction", "parents": ["R Data Import/Export", "Intro", "intro"]}],
    }
    out = _header([Document(content="Introduction\ntext", meta=meta)], parent_headings=3)
    assert out[0].meta["context_header"] == SEP.join(["R Data Import/Export", "Intro", "Introduction"])


def test_html_anchors_locate_headings_the_extractor_dropped() -> None:
    first = "FTS5 is an SQLite virtual table module that provides full-text search."
    second = "As of version 3.9.0 FTS5 is included as part of the SQLite amalgamation."
    marks = [
        {"heading": "1. Overview of FTS5", "anchor": normalize(first)[:48]},
        {"heading": "2. Compiling and Using FTS5", "anchor": normalize(second)[:48]},
    ]
    meta = {"title": "SQLite FTS5 Extension", "document_id": "fts5", "section_marks": dump_marks(marks)}
    chunks = [
        Document(content=first + " More on what it does.", meta=meta),
        Document(content="Tail of the overview. " + second + " " + "and building it " * 10, meta=meta),
        Document(content="Other page without marks.", meta={"title": "Other", "document_id": "other"}),
        Document(content="The compile options continue here.", meta=meta),
    ]
    out = _header(chunks)
    assert [doc.meta.get("section") for doc in out] == [
        "1. Overview of FTS5",
        "2. Compiling and Using FTS5",
        None,
        "2. Compiling and Using FTS5",  # per source: another file in between does not reset it
    ]
    assert out[2].meta["context_header"] == "Other"


def test_marks_are_found_in_order_and_a_missing_one_is_skipped() -> None:
    marks = [{"heading": "Never in the text"}, {"heading": "Alpha"}, {"heading": "Beta"}]
    meta = {"title": "T", "section_marks": marks}
    out = _header([Document(content="Beta\nAlpha\n" + "a" * 50 + "\nBeta\n" + "b" * 200, meta=meta)])
    assert out[0].meta["section"] == "Beta"  # Alpha, then the later Beta line (not the one before Alpha)


def test_a_section_equal_to_the_title_is_not_repeated_and_headers_are_capped() -> None:
    meta = {"title": "Links", "page": 1, "section_marks": [{"heading": "Links"}]}
    out = _header([Document(content="Links\nabout links", meta=meta)])
    assert out[0].meta["context_header"] == f"Links{SEP}page 1"
    long = _header([Document(content="x", meta={"title": "t" * 500})], max_chars=40)
    assert long[0].meta["context_header"] == "t" * 40


def test_hierarchical_levels_are_separate_sequences() -> None:
    meta = {"title": "T", "document_id": "d", "section_marks": [{"heading": "Second part"}]}
    root = Document(content="intro\nSecond part\n" + "y" * 500, meta={**meta, "__level": 0})
    first_leaf = Document(content="intro " * 50, meta={**meta, "__level": 1})
    out = _header([root, first_leaf])
    assert out[1].meta.get("section") is None  # the root having passed the mark does not move the leaves on


def test_in_yaml_pipeline() -> None:
    pipe = Pipeline.loads(
        "components:\n  header:\n    type: components.preprocessors.contextual_header.ContextualHeader\n"
        "    init_parameters: {include_page: false}\nconnections: []\n",
        allowed_modules=["components"],
    )
    out = pipe.run({"header": {"documents": [Document(content="x", meta={"title": "Manual", "page": 2})]}})
    assert out["header"]["documents"][0].meta["context_header"] == "Manual"
