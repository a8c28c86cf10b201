"""Content sniffing and size guards, on bytes alone."""

import pytest

from app.errors import ExtractionError, PayloadTooLargeError, UnsupportedFileTypeError
from app.services.file_checks import DOCX, PDF, FileLimits, inspect_upload, sniff_content_type


@pytest.mark.parametrize(
    ("data", "guessed", "expected"),
    [
        (b"%PDF-1.7\n...", "text/plain", PDF),
        (b"\x89PNG\r\n\x1a\n....", None, "image/png"),
        (b"\xff\xd8\xff\xe0..", "application/pdf", "image/jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", None, "image/webp"),
        (b"a,b\n1,2\n", "text/csv", "text/csv"),
        (b"# Title\n", "text/markdown", "text/markdown"),
        (b"<!DOCTYPE html><html>", None, "text/html"),
        (b"plain words", "application/pdf", "text/plain"),
        ("caf\u00e9 au lait".encode("cp1252"), "text/plain", "text/plain"),
        (bytes(range(256)), "text/plain", "application/octet-stream"),
    ],
)
def test_sniffing(data, guessed, expected):
    assert sniff_content_type(data, guessed) == expected


def test_docx_is_recognised_inside_its_zip(docx_file):
    assert sniff_content_type(docx_file.read_bytes(), None) == DOCX


def test_guards(r_intro_pdf):
    limits = FileLimits(max_pdf_pages=100)
    with pytest.raises(ExtractionError, match="empty"):
        inspect_upload(b"", "a.pdf", PDF, limits)
    with pytest.raises(UnsupportedFileTypeError, match="not a supported format"):
        inspect_upload(b"\x7fELF\x00\x00", "a.txt", "text/plain", limits)
    with pytest.raises(PayloadTooLargeError, match="113 pages"):
        inspect_upload(r_intro_pdf.read_bytes(), "R-intro.pdf", PDF, limits)
    assert inspect_upload(r_intro_pdf.read_bytes(), "R-intro.pdf", PDF, FileLimits()) == PDF
