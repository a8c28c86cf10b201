"""What the server needs to know about a PDF before it is converted (its page count), found out in a worker process.

A hostile PDF can make any parser slow or hungry, and the page count is read before the file's own conversion: so it
is read where the conversion runs, in a worker of the converters' shared pool (`isolated_converter`), under the same
time limit per file. The server process never opens a PDF. PDFium (C code) reads the page tree's declared total, as
the converter does when it opens the file.
"""

from __future__ import annotations

from haystack import logging
from pebble import ProcessExpired

from components.converters.errors import ConversionError, ParseTimeoutError
from components.converters.isolated_converter import current_pool

logger = logging.getLogger(__name__)


def _page_count(data: bytes) -> int | None:
    """Runs in a worker: the page count PDFium reads, or None when it cannot open the file (encrypted, corrupt)."""
    import pypdfium2  # imported in the worker only

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError:
        return None
    try:
        return len(document)
    finally:
        document.close()


def count_pdf_pages(data: bytes, *, timeout_s: float, name: str = "the PDF") -> int | None:
    """
    The number of pages of a PDF, counted in a worker process of the converters' pool.

    :param data: the file's bytes.
    :param timeout_s: seconds the count may take (the parse time limit per file).
    :param name: the file's name, for error messages.
    :returns: the page count, or None when the file cannot be opened (encrypted, corrupt): its conversion reports why.
    :raises ParseTimeoutError: counting took longer than `timeout_s`; the worker was stopped (and is replaced).
    :raises ConversionError: the worker died while counting.
    """
    future = current_pool().schedule(_page_count, args=(data,), timeout=timeout_s)
    try:
        return future.result()
    except TimeoutError:
        logger.warning(
            "Reading the pages of {file} took longer than {timeout} s: its worker was stopped",
            file=name,
            timeout=timeout_s,
        )
        raise ParseTimeoutError(
            f"reading the pages of {name} took longer than {timeout_s:g} s (the limit per file) and was stopped"
        ) from None
    except ProcessExpired as error:
        logger.warning("The parser worker died on {file} (exit code {code})", file=name, code=error.exitcode)
        raise ConversionError(f"the parser crashed on {name} (worker exit code {error.exitcode})") from error
