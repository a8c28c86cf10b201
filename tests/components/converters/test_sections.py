"""Section marks: PDF outlines per page, HTML headings anchored to the words after them."""

from __future__ import annotations

from components.converters.sections import MAX_MARKS, dump_marks, html_marks, marks_of, normalize, page_sections


def test_normalize_keeps_letters_and_digits_only() -> None:
    assert normalize("1.1.2  The Shell-prompt\n(GUI)") == "112theshellpromptgui"
    assert normalize("Größe") == "grösse"


def test_page_sections_carry_the_last_heading_into_the_next_pages() -> None:
    outline = [(0, "Intro", 0), (2, "Basics", 0), (2, " Files\n and  dirs ", 1), (4, "Late", 0)]
    sections = page_sections(outline, 5)
    assert sections == [
        (None, [], [{"heading": "Intro"}]),
        ("Intro", [], []),
        ("Intro", [], [{"heading": "Basics"}, {"heading": "Files and dirs", "parents": ["Basics"]}]),
        ("Files and dirs", ["Basics"], []),
        ("Files and dirs", ["Basics"], [{"heading": "Late"}]),
    ]


def test_page_sections_name_each_headings_parents_from_the_outline_levels() -> None:
    outline = [(0, "1 Set", 0), (0, "Style", 1), (1, "Fill", 2), (2, "Examples", 3), (3, "Key", 1), (3, "Deep", 5)]
    marks = [mark for _, _, page_marks in page_sections(outline, 4) for mark in page_marks]
    assert [mark.get("parents", []) for mark in marks] == [
        [],
        ["1 Set"],
        ["1 Set", "Style"],
        ["1 Set", "Style", "Fill"],
        ["1 Set"],  # a sibling of Style closes Style's subtree
        ["1 Set", "Key"],  # a skipped level still nests
    ]
    many = page_sections([(0, f"h{level}", level) for level in range(20)], 1)[0][2]
    assert many[-1]["parents"] == [f"h{level}" for level in range(13, 19)]  # the nearest six


def test_page_sections_sort_by_page_and_drop_bad_entries() -> None:
    outline = [(3, "Later", 0), (1, "Earlier", 0), (-1, "Nowhere", 0), (9, "Past the end", 0), (2, "   ", 0)]
    sections = page_sections(outline, 4)
    assert [marks for _, _, marks in sections] == [[], [{"heading": "Earlier"}], [], [{"heading": "Later"}]]
    assert len(page_sections([(0, f"h{i}", 0) for i in range(MAX_MARKS + 5)], 1)[0][2]) == MAX_MARKS
    # an entry off the pages is still the parent of the entries below it
    assert page_sections([(-1, "Lost", 0), (0, "Child", 1)], 1)[0][2] == [{"heading": "Child", "parents": ["Lost"]}]


HTML = b"""<html><head><title>T</title><script>var h = "<h2>no</h2>";</script></head><body>
<h1>1. Overview of Widgets</h1>
<p>Widgets are small reusable parts that every application needs sooner or later.</p>
<div><h2><a name="x"></a>1.1. Building widgets</h2></div>
<p>To build a widget, run the widget compiler on its description file.</p>
<h2>Too short</h2><p>Tiny.</p>
<h3>Nested</h3><h4>Deeper</h4><p>Both nested headings anchor to this same long paragraph of text.</p>
</body></html>"""


def test_html_marks_anchor_each_heading_to_the_words_after_it() -> None:
    marks = html_marks(HTML.decode())
    assert marks[0] == {
        "heading": "1. Overview of Widgets",
        "anchor": normalize("Widgets are small reusable parts that every application needs sooner or later.")[:48],
    }
    assert marks[1]["heading"] == "1.1. Building widgets"
    assert marks[1]["anchor"].startswith("tobuildawidget")  # the tail text of the enclosing div's sibling
    headings = [mark["heading"] for mark in marks]
    assert "Too short" in headings  # "Tiny." is followed by the next sections' text, which is long enough
    assert marks[-2]["anchor"] == marks[-1]["anchor"] and headings[-2:] == ["Nested", "Deeper"]
    assert "parents" not in marks[0]
    assert marks[1]["parents"] == ["1. Overview of Widgets"]
    assert marks[-2]["parents"] == ["1. Overview of Widgets", "Too short"]  # an <h3> after an <h2>
    assert marks[-1]["parents"] == ["1. Overview of Widgets", "Too short", "Nested"]


def test_html_marks_of_unparsable_or_headingless_pages_are_empty() -> None:
    assert html_marks("") == []
    assert html_marks("<p>No headings here at all, only a paragraph of text.</p>") == []
    assert html_marks("<h1>Last heading</h1>") == []  # nothing follows: no anchor


def test_marks_of_ignores_malformed_meta() -> None:
    assert marks_of({}) == []
    assert marks_of({"section_marks": "x"}) == []
    assert marks_of({"section_marks": [{"heading": "A"}, {"anchor": "b"}, "c", {"heading": 3}]}) == [{"heading": "A"}]


def test_marks_are_stored_as_json_and_read_back() -> None:
    marks = [{"heading": "Größe", "anchor": "abc"}]
    assert marks_of({"section_marks": dump_marks(marks)}) == marks
    assert marks_of({"section_marks": "[not json"}) == []


def test_html_marks_work_is_bounded_on_a_hostile_page() -> None:
    page = "<body>" + ("<h2>Heading</h2>" + "<br>" * 2000) * 300 + "<p>" + "word " * 50 + "</p></body>"
    assert html_marks(page) == []  # no heading has text within its next siblings: nothing anchored, quickly
    many = "<body>" + "<h2>Heading</h2><p>some text that is long enough for an anchor</p>" * (MAX_MARKS + 10)
    assert len(html_marks(many)) == MAX_MARKS
