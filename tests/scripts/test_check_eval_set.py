"""scripts/check_eval_set.py validates an eval set against its corpus: HTML pages, or PDF pages by number."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.testing.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_REFERENCE_PDF = Path("/usr/share/debian-reference/debian-reference.en.pdf")
GNUPLOT_PDF = Path("/usr/share/doc/gnuplot/gnuplot.pdf")
R_MANUAL_PDFS = tuple(Path("/usr/share/R/doc/manual") / name for name in ("R-admin.pdf", "R-data.pdf", "R-FAQ.pdf"))


def _with_splits(rows: list[dict]) -> list[dict]:
    splits = load_script("assign_eval_split").assign_splits(rows)
    return [{**row, "split": splits[row["id"]]} for row in rows]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def pdf_corpus(tmp_path, r_intro_pdf):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(r_intro_pdf, corpus / "R-intro.pdf")
    return corpus


def _pdf_rows(page: object = 10, **extra: object) -> list[dict]:
    # R-intro.pdf: PDF page 10 explains quitting (a "dialog box" asks whether to save), page 11 case sensitivity
    source = {"file": "R-intro.pdf", "page": page} if page is not None else {"file": "R-intro.pdf"}
    return [
        {
            "id": "q001",
            "question": "What pops up on some systems when I quit R?",
            "expected_answer": "a dialog box asking whether to save the data",
            "expected_sources": [source],
            "answer_terms": ["dialog box"],
            "answerable": True,
            **extra,
        },
        {
            "id": "q002",
            "question": "How do I deploy R on Kubernetes?",
            "answerable": False,
            "absent_terms": ["kubernetes"],
        },
    ]


def _check(path: Path, corpus: Path, capsys) -> tuple[int, str]:
    status = load_script("check_eval_set").check(path, corpus, use_converter=False)
    return status, capsys.readouterr().out


def test_pdf_set_with_terms_on_the_listed_page_passes(tmp_path, pdf_corpus, capsys):
    status, out = _check(_write(tmp_path / "q.jsonl", _with_splits(_pdf_rows())), pdf_corpus, capsys)
    assert status == 0, out
    assert "checked against: pypdfium2 page text" in out and "OK" in out
    assert "corpus pages: 113, used as expected sources: 1" in out
    assert "dev: 0 answerable, 0 unanswerable" in out and "test: 1 answerable, 1 unanswerable" in out  # round(1/3) = 0


def test_pdf_term_not_on_the_listed_page_fails(tmp_path, pdf_corpus, capsys):
    status, out = _check(_write(tmp_path / "q.jsonl", _with_splits(_pdf_rows(page=11))), pdf_corpus, capsys)
    assert status == 1
    assert "term 'dialog box' not in the page text of R-intro.pdf#11" in out


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (None, "needs file and page"),
        (0, "needs file and page"),
        (114, "is not a page of"),
        ("10", "needs file and page"),
    ],
)
def test_pdf_source_without_a_valid_page_fails(tmp_path, pdf_corpus, capsys, page, message):
    status, out = _check(_write(tmp_path / "q.jsonl", _with_splits(_pdf_rows(page=page))), pdf_corpus, capsys)
    assert status == 1 and message in out


def test_missing_or_off_rule_split_fails(tmp_path, pdf_corpus, capsys):
    rows = _pdf_rows()
    status, out = _check(_write(tmp_path / "none.jsonl", rows), pdf_corpus, capsys)
    assert status == 1 and 'split must be "dev" or "test"' in out
    flipped = [{**row, "split": "test" if row["split"] == "dev" else "dev"} for row in _with_splits(rows)]
    status, out = _check(_write(tmp_path / "flipped.jsonl", flipped), pdf_corpus, capsys)
    assert status == 1 and "split does not follow the seeded rule" in out


def test_unanswerable_question_whose_terms_are_in_the_corpus_is_a_warning(tmp_path, pdf_corpus, capsys):
    rows = _pdf_rows()
    rows[1]["absent_terms"] = ["Kubernetes", "case sensitive"]
    status, out = _check(_write(tmp_path / "q.jsonl", _with_splits(rows)), pdf_corpus, capsys)
    assert status == 0, out
    assert "absent_terms occur in the corpus" in out and "q002 ['case sensitive']" in out


def test_html_corpus_is_checked_by_file(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.html").write_text("<html><head><title>hidden</title></head><body><p>The answer is 42.</p></body>")
    rows = [
        {
            "id": "q001",
            "question": "What is it?",
            "expected_answer": "42",
            "expected_sources": [{"file": "a.html"}],
            "answer_terms": ["answer is 42"],
            "answerable": True,
        },
        {
            "id": "q002",
            "question": "Which title?",
            "expected_answer": "hidden",
            "expected_sources": [{"file": "a.html"}],
            "answer_terms": ["hidden"],
            "answerable": True,
        },
    ]
    status, out = _check(_write(tmp_path / "q.jsonl", _with_splits(rows)), corpus, capsys)
    assert status == 1
    assert "term 'hidden' not in the visible text of a.html" in out and "answer is 42" not in out


@pytest.mark.parametrize(
    ("name", "pdfs", "counts"),
    [
        (
            "debian-reference",
            (DEBIAN_REFERENCE_PDF,),
            "dev: 26 answerable, 21 unanswerable\n  test: 52 answerable, 43 unanswerable",
        ),
        ("gnuplot", (GNUPLOT_PDF,), "dev: 21 answerable, 11 unanswerable\n  test: 43 answerable, 22 unanswerable"),
        ("r-manuals", R_MANUAL_PDFS, "dev: 23 answerable, 11 unanswerable\n  test: 46 answerable, 22 unanswerable"),
    ],
)
def test_shipped_pdf_set_matches_its_pdf(tmp_path, capsys, name, pdfs, counts):
    """A shipped set against the installed package (scripts/apt-packages-test.txt); fails, never skips, without it."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for pdf in pdfs:
        if not pdf.is_file():
            pytest.fail(f"missing {pdf}: run bash scripts/build_eval_corpus.sh", pytrace=False)
        (corpus / pdf.name).symlink_to(pdf)
    status, out = _check(ROOT / "eval" / name / "questions.jsonl", corpus, capsys)
    assert status == 0, out
    assert "absent_terms occur" not in out
    assert counts in out
