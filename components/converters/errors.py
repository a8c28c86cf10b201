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
        if detail.startswith("OCR not available"):  # rebuilt from its own message (unpickled from a worker process)
            message, detail = detail, ""
        if detail:
            message = f"{message}; {detail}"
        super().__init__(message)


class ParseTimeoutError(ConversionError):
    """Parsing one file took longer than the allowed time; the worker process parsing it was stopped."""


class TextTooLargeError(ConversionError):
    """A file's extracted text is longer than the allowed number of characters (e.g. a text "bomb")."""
