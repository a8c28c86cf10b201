"""Exceptions raised by the project's file converters.

The indexing pipeline runs once per file, so a converter that cannot read a file raises one of these
(when `raise_on_failure=True`, the default) instead of silently returning no documents.
"""

from __future__ import annotations


class ConversionError(ValueError):
    """A file could not be converted: corrupt, encrypted without a usable password, empty, undecodable..."""


class OcrUnavailableError(ConversionError):
    """The file needs OCR but tesseract is not installed. The message always contains "OCR not available"."""

    def __init__(self, detail: str = "") -> None:
        message = "OCR not available: install tesseract-ocr (Debian: apt-get install tesseract-ocr tesseract-ocr-eng)"
        if detail:
            message = f"{message}; {detail}"
        super().__init__(message)
