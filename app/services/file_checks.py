"""What an uploaded file really is, and whether it is safe to parse, decided from its bytes before any parser runs.

- The type is sniffed from magic bytes; the file name's extension only chooses among text formats (CSV, Markdown,
  HTML, plain text), so a renamed executable or archive is refused (415) whatever it is called.
- Size guards against decompression bombs: a DOCX (a ZIP) whose members would expand beyond a limit, or far beyond
  their compressed size; an image with more pixels than allowed; a PDF with more pages than allowed (413).
- A PDF is never opened here: its page count is read in a worker process of the converters' pool, under the parse
  time limit per file (`components.converters.pdf_inspection`), once per file; a caller that already has the count
  passes it along.
- Empty files are refused (422).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from PIL import Image

from app.errors import ExtractionError, ParseTimeoutError, PayloadTooLargeError, UnsupportedFileTypeError
from components.converters import errors as converter_errors
from components.converters.pdf_inspection import count_pdf_pages

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT_TYPES = ("text/plain", "text/markdown", "text/csv", "text/html")
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
)
_MAX_ZIP_RATIO = 200  # a DOCX's XML compresses ~5-20x; a bomb compresses 1000x


@dataclass(frozen=True)
class FileLimits:
    """Per-file guards, from settings."""

    max_pdf_pages: int = 2000
    max_image_pixels: int = 89_478_485  # Pillow's own default
    max_unzipped_mb: int = 200
    parse_timeout_s: float = 300.0  # also bounds reading a PDF's page count


def looks_like_pdf(head: bytes) -> bool:
    """True when the first KiB holds a PDF header (readers accept junk before it, so do we)."""
    return b"%PDF-" in head[:1024]


def sniff_content_type(data: bytes, guessed: str | None) -> str:
    """The content type the bytes show; `guessed` (from the name) only picks among text formats."""
    head = data[:2048]
    if looks_like_pdf(head):
        return PDF
    for magic, mime in _IMAGE_MAGIC:
        if head.startswith(magic):
            return mime
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"PK\x03\x04"):
        return DOCX if _is_docx(data) else "application/zip"
    if _looks_like_text(head):
        if guessed in TEXT_TYPES:
            return guessed
        lowered = head.lstrip().lower()
        return "text/html" if lowered.startswith((b"<!doctype html", b"<html")) else "text/plain"
    return "application/octet-stream"


def inspect_upload(
    data: bytes, name: str, guessed: str | None, limits: FileLimits, *, pdf_pages: int | None = None
) -> str:
    """Return the sniffed content type, or raise the 4xx error the file deserves.

    `pdf_pages`: the PDF's page count when the caller already has it (from `pdf_page_count`), so that it is not
    read twice; without it, a PDF's pages are counted in a worker process.
    """
    if not data:
        raise ExtractionError(f"{name}: the file is empty")
    mime = sniff_content_type(data, guessed)
    if mime in ("application/octet-stream", "application/zip"):
        shown = "a ZIP archive that is not a DOCX" if mime == "application/zip" else "not a supported format"
        raise UnsupportedFileTypeError(f"{name}: the content is {shown} (PDF, DOCX, text, CSV, Markdown, HTML, images)")
    if guessed and guessed != mime and not (guessed in TEXT_TYPES and mime in TEXT_TYPES):
        name = f"{name} (content is {mime})"
    if mime == DOCX:
        _check_zip(data, name, limits)
    elif mime.startswith("image/"):
        _check_image(data, name, limits)
    elif mime == PDF:
        _check_pdf(data, name, limits, pdf_pages)
    return mime


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # a multi-byte character cut at the end of the sample is fine
            try:
                head.decode("cp1252")
            except UnicodeDecodeError:
                return False
    return True


def _check_zip(data: bytes, name: str, limits: FileLimits) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ExtractionError(f"{name}: corrupt DOCX ({error})") from error
    expanded = sum(member.file_size for member in members)
    compressed = sum(member.compress_size for member in members) or 1
    if expanded > limits.max_unzipped_mb * 1024 * 1024 or expanded / compressed > _MAX_ZIP_RATIO:
        raise PayloadTooLargeError(
            f"{name}: the DOCX would expand to {expanded / 1024 / 1024:.0f} MiB "
            f"({expanded / compressed:.0f}x its size); limit {limits.max_unzipped_mb} MiB, {_MAX_ZIP_RATIO}x"
        )


def _check_image(data: bytes, name: str, limits: FileLimits) -> None:
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError as error:  # Pillow's own guard (beyond twice its limit)
        raise PayloadTooLargeError(f"{name}: the image has too many pixels ({error})") from error
    except OSError as error:
        raise ExtractionError(f"{name}: unreadable image ({error})") from error
    if width * height > limits.max_image_pixels:
        raise PayloadTooLargeError(
            f"{name}: the image has {width}x{height} pixels, more than the limit of {limits.max_image_pixels}"
        )


def pdf_page_count(data: bytes, name: str, limits: FileLimits) -> int:
    """The page count of a PDF, read in a worker process of the converters' pool within `limits.parse_timeout_s`
    (never in this process); 0 when the PDF cannot be opened (encrypted, corrupt): its conversion tells why.

    :raises ParseTimeoutError: reading the count took longer than the parse time limit (422 `parse_timeout`).
    :raises ExtractionError: the worker died while reading it.
    """
    try:
        pages = count_pdf_pages(data, timeout_s=limits.parse_timeout_s, name=name)
    except converter_errors.ParseTimeoutError as error:
        raise ParseTimeoutError(f"{name}: {error}") from None
    except converter_errors.ConversionError as error:
        raise ExtractionError(f"{name}: {error}") from None
    return pages or 0


def _check_pdf(data: bytes, name: str, limits: FileLimits, pages: int | None) -> None:
    if pages is None:
        pages = pdf_page_count(data, name, limits)
    if pages > limits.max_pdf_pages:
        raise PayloadTooLargeError(f"{name}: the PDF has {pages} pages, more than the limit of {limits.max_pdf_pages}")
