"""Running headers and footers removed from page texts, the body lines left as they were."""

from __future__ import annotations

from components.converters.running_lines import line_key, remove_running_lines


def _body(page: int) -> str:
    word = "abcdefghijklmnopqrstuvwxyz"[page % 26] * 4  # no digits: a body line is never a running line here
    return f"Body line one about {word}.\nBody line two says something else.\n"


def test_line_key_reads_digit_runs_as_one_placeholder() -> None:
    assert line_key("  Debian Reference 139 /  233 ") == line_key("Debian Reference 7 / 9") != line_key("Debian 7")
    assert line_key("52") == line_key("1")
    assert line_key("Syntax:") is None  # no number: never a running line
    assert line_key("## End(Not run)") is None  # a "#" is not a digit
    assert line_key("1, 2, 3, 4,") is None  # numbers without a word: data
    assert line_key("   ") is None
    assert line_key("x 1 " + "y" * 200) is None  # too long for a header


def test_a_header_repeated_with_its_page_number_is_removed() -> None:
    texts = [f"Debian Reference {page} / 233\n{_body(page)}" for page in range(1, 6)]
    assert remove_running_lines(texts) == [_body(page) for page in range(1, 6)]


def test_a_bare_page_number_footer_is_removed_and_crlf_kept() -> None:
    texts = [f"Some text.\r\nMore text.\r\n{page}" for page in range(1, 5)]
    assert remove_running_lines(texts) == ["Some text.\r\nMore text.\r\n"] * 4


def test_a_repeated_line_without_a_number_is_text() -> None:
    texts = [f"{_body(page)}Syntax:" for page in range(1, 6)]
    assert remove_running_lines(texts) == texts


def test_table_rows_whose_numbers_do_not_follow_the_pages_are_text() -> None:
    rows = ["2024-01-05 Payment 120.00", "2024-01-03 Payment 75.50", "2024-02-11 Payment 9.99", "2024-03-01 Payment 3"]
    texts = [f"{row}\n{_body(page)}" for page, row in enumerate(rows)]
    assert remove_running_lines(texts) == texts


def test_a_line_with_a_page_number_and_a_constant_number_is_removed_when_the_page_number_follows() -> None:
    # "Guide 7, page 11" on pages 1-4: 11 - 1 = 12 - 2 = ...; the 7 is the same on every page
    texts = [f"Guide 7, page {index + 10}\n{_body(index)}" for index in range(1, 5)]
    assert remove_running_lines(texts) == [_body(index) for index in range(1, 5)]


def test_two_pages_do_not_make_a_running_line() -> None:
    texts = [f"Manual 1.0 {page}\n{_body(page)}" for page in (1, 2)]
    assert remove_running_lines(texts) == texts
    assert remove_running_lines(texts, min_pages=2) == [_body(1), _body(2)]


def test_a_short_chapter_header_is_found_by_its_page_number() -> None:
    # printed page = index + 10 throughout; "Chapter 2" spans two pages only, "Chapter 1" six
    titles = ["Chapter 1: Long chapter"] * 6 + ["Chapter 2: Short one"] * 2 + ["Chapter 3: Another long one"] * 4
    texts = ["Cover\n" + _body(0)] + [
        f"{title} {index + 10}\n{_body(index)}" for index, title in enumerate(titles, start=1)
    ]
    result = remove_running_lines(texts)
    assert result[0] == texts[0]  # no header on the cover
    assert result[1:] == [_body(index) for index in range(1, len(titles) + 1)]


def test_numbers_that_follow_the_pages_briefly_are_not_page_numbers() -> None:
    # footnotes 4, 5, 6 at the foot of pages 4, 5, 6 of 20: offset 0 on 3 pages, under a quarter of them
    notes = {4: "A first note.", 5: "See the appendix.", 6: "Since version two."}
    texts = [_body(page) + (f"{page} {notes[page]}" if page in notes else "") for page in range(20)]
    assert remove_running_lines(texts) == texts


def test_only_the_edge_lines_go_and_empty_pages_stay() -> None:
    texts = [f"Guide 7 {page}\nGuide 7 {page}\n{_body(page)}" for page in range(1, 5)] + ["", "   \n"]
    result = remove_running_lines(texts)
    assert result[:4] == [f"Guide 7 {page}\n{_body(page)}" for page in range(1, 5)]  # the second copy is body
    assert result[4:] == ["", "   \n"]


def test_no_pages() -> None:
    assert remove_running_lines([]) == []
