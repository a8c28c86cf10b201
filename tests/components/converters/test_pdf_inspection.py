"""count_pdf_pages: a PDF's page count, read in a worker process of the converters' pool under a time limit."""

import pypdf
import pypdfium2
import pytest

from app.testing.crafted_pdfs import page_tree_pdf
from components.converters.errors import ParseTimeoutError
from components.converters.pdf_inspection import count_pdf_pages

pytestmark = pytest.mark.integration  # starts worker processes


@pytest.fixture
def no_pdf_reads_here(monkeypatch):
    """Opening a PDF in this process fails the test: the count must be read in a worker process."""

    def refuse(*args, **kwargs):
        raise AssertionError("a PDF was opened in the calling process")

    monkeypatch.setattr(pypdf, "PdfReader", refuse)
    monkeypatch.setattr(pypdfium2, "PdfDocument", refuse)


def test_counts_the_pages_in_a_worker(no_pdf_reads_here, r_intro_pdf, multipage_pdf):
    assert count_pdf_pages(r_intro_pdf.read_bytes(), timeout_s=60) == 113
    assert count_pdf_pages(multipage_pdf.read_bytes(), timeout_s=60) == 6
    assert count_pdf_pages(page_tree_pdf(7), timeout_s=60) == 7
    assert count_pdf_pages(page_tree_pdf(9, xref=False, count=False), timeout_s=60) == 9  # rebuilt and walked


def test_a_pdf_that_cannot_be_opened_has_no_count(no_pdf_reads_here, encrypted_pdf, invalid_pdf):
    assert count_pdf_pages(encrypted_pdf.read_bytes(), timeout_s=60) is None
    assert count_pdf_pages(invalid_pdf.read_bytes(), timeout_s=60) is None
    assert count_pdf_pages(b"%PDF-1.7\nnothing else", timeout_s=60) is None


def test_a_count_slower_than_the_limit_is_stopped(no_pdf_reads_here):
    slow = page_tree_pdf(200_000, xref=False, count=False)  # ~1 s of PDFium
    with pytest.raises(ParseTimeoutError, match=r"took longer than 0.05 s"):
        count_pdf_pages(slow, timeout_s=0.05, name="slow.pdf")
    assert count_pdf_pages(page_tree_pdf(3), timeout_s=60) == 3  # its worker was replaced
