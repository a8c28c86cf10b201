"""PDF converter: one Document per page, PDF metadata, OCR of scanned pages with tesseract."""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, get_args

import pypdf
import pypdf.errors
import pypdfium2
import pypdfium2.raw as pdfium_c
from haystack import Document, component, logging
from haystack.dataclasses import ByteStream
from PIL import Image

from components.converters.dehyphenation import dehyphenate, mark_line_end_hyphens
from components.converters.errors import ConversionError, OcrUnavailableError
from components.converters.ocr import ocr_image, tesseract_available, validate_language
from components.converters.running_lines import remove_running_lines
from components.converters.sections import dump_marks, page_sections
from components.converters.sources import convert_sources, document_meta
from components.text.lexicon import check_lexicon
from components.validation import check_bool, check_int, check_positive_number

logger = logging.getLogger(__name__)

# PDFium is not thread-safe (not even across documents), and the app may run pipelines in worker threads:
# every pypdfium2 call of this module holds this lock. OCR runs outside it.
_PDFIUM_LOCK = threading.RLock()

Backend = Literal["pypdfium2", "pypdf"]
OcrMode = Literal["auto", "off"]

# Exceptions pypdf raises on malformed files besides its own PyPdfError hierarchy.
_PYPDF_ERRORS: tuple[type[BaseException], ...] = (
    pypdf.errors.PyPdfError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    RecursionError,
    OSError,
)

# PDF date: D:YYYYMMDDHHmmSSOHH'mm' where everything after the year is optional and O is +, - or Z.
_PDF_DATE_RE = re.compile(
    r"^\s*(?:D:)?(?P<Y>\d{4})(?P<m>\d{2})?(?P<d>\d{2})?(?P<H>\d{2})?(?P<M>\d{2})?(?P<S>\d{2})?"
    r"(?:(?P<tz>[Zz+\-])(?:(?P<tzh>\d{2})'?(?:(?P<tzm>\d{2})'?)?)?)?"
)
# C0 controls except tab/newline, plus the Unicode non-characters pdfium sometimes emits.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")


def parse_pdf_date(value: Any) -> str | None:
    """
    Parse a PDF date string ("D:20221110120000Z", "D:20161107122451-08'00'", "D:2015") into ISO-8601.

    Returns None when the value is empty or not a valid date. Dates with an offset (or "Z") become
    timezone-aware ISO strings; dates without one stay naive.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    match = _PDF_DATE_RE.match(str(value))
    if match is None:
        return None
    parts = match.groupdict()
    try:
        tzinfo: timezone | None = None
        if parts["tz"] is not None:
            if parts["tz"] in "Zz":
                tzinfo = UTC
            else:
                offset = timedelta(hours=int(parts["tzh"] or 0), minutes=int(parts["tzm"] or 0))
                tzinfo = timezone(-offset if parts["tz"] == "-" else offset)
        parsed = datetime(
            int(parts["Y"]),
            int(parts["m"] or 1),
            int(parts["d"] or 1),
            int(parts["H"] or 0),
            int(parts["M"] or 0),
            int(parts["S"] or 0),
            tzinfo=tzinfo,
        )
    except ValueError:  # month 13, hour 25, offset >= 24h...
        return None
    return parsed.isoformat()


def _clean_text(text: str | None) -> str:
    """Normalize extracted text: unify newlines, drop NUL/control characters (PDFium's line-end hyphen markers are
    decided before, by `dehyphenate`)."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL_RE.sub("", text)
    return text.strip()


def _visible_chars(text: str) -> int:
    return sum(1 for char in text if not char.isspace())


def _file_metadata(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Map a PDF Info dictionary (pypdfium2 or pypdf keys) to our standard meta keys."""
    if not raw:
        return {}
    # raw[key] (not .items()) so that pypdf resolves indirect objects
    info = {str(key).lstrip("/"): raw[key] for key in raw}
    result: dict[str, Any] = {}
    for source_key, target_key in (("Title", "title"), ("Author", "author")):
        value = info.get(source_key)
        if value is not None:
            cleaned = _CONTROL_RE.sub("", str(value)).strip()
            if cleaned:
                result[target_key] = cleaned
    created_at = parse_pdf_date(info.get("CreationDate"))
    if created_at:
        result["created_at"] = created_at
    return result


_Outline = list[tuple[int, str, int]]
#: Outline entries read at most (a hostile PDF's bookmark tree can be huge or cyclic).
_MAX_OUTLINE_ENTRIES = 5000


def _outline_pypdfium2(pdf: pypdfium2.PdfDocument, name: str) -> _Outline:
    """`(page index, title, level)` of the PDF's bookmarks, in order (pypdfium2 stops at cycles and depth 15)."""
    outline: _Outline = []
    try:
        for bookmark in pdf.get_toc():
            destination = bookmark.get_dest()
            index = destination.get_index() if destination is not None else None
            if index is not None:
                outline.append((int(index), _CONTROL_RE.sub("", bookmark.get_title() or ""), int(bookmark.level)))
            if len(outline) >= _MAX_OUTLINE_ENTRIES:
                break
    except pypdfium2.PdfiumError as error:
        logger.warning("Ignoring the unreadable outline of {file}: {error}", file=name, error=str(error))
        return []
    return outline


def _outline_pypdf(reader: pypdf.PdfReader, name: str) -> _Outline:
    """`(page index, title, level)` of the PDF's bookmarks, in order."""
    outline: _Outline = []

    def walk(items: Any, depth: int) -> None:
        for item in items:
            if len(outline) >= _MAX_OUTLINE_ENTRIES or depth > 15:
                return
            if isinstance(item, list):
                walk(item, depth + 1)
                continue
            index = reader.get_destination_page_number(item)
            if index is not None and index >= 0:
                outline.append((int(index), _CONTROL_RE.sub("", str(item.title or "")), depth))

    try:
        walk(reader.outline, 0)
    except _PYPDF_ERRORS as error:
        logger.warning("Ignoring the unreadable outline of {file}: {error}", file=name, error=str(error))
        return []
    return outline


@component
class PdfToDocument:
    """
    Converts PDF files to one Document per page, OCRing pages that have no text layer.

    - `backend="pypdfium2"` (default, fast) extracts text with PDFium; `backend="pypdf"` uses pypdf's
      `extract_text()`. Rendering for OCR always uses pypdfium2.
    - Every Document gets meta `page` (1-based); empty pages produce no Document but keep the numbering.
    - From the PDF's outline (bookmarks), when it has one: meta `section` (the bookmark in effect where the page
      starts), `section_parents` (the bookmarks above it) and `section_marks` (the bookmarks that begin on the
      page), see `components.converters.sections`.
      `title`, `author` and `created_at` (ISO-8601) come from the PDF's Info dictionary when present.
    - With `ocr="auto"`, pages whose text layer has fewer than `ocr_min_chars` non-space characters are
      rendered at `ocr_dpi` (lower for pages bigger than `ocr_max_pixels`) and OCRed with tesseract (meta
      `ocr=True`). Without tesseract such pages are skipped with a warning, and a PDF that yields no text at
      all because of that raises `OcrUnavailableError`.
    - Encrypted PDFs are opened with the empty password; otherwise `ConversionError("encrypted PDF ...")`.
      Corrupt PDFs raise `ConversionError`. With `raise_on_failure=False` both are logged and skipped.
    - A hyphen at a line end is removed with the line break when it breaks a word (`re-` / `spectively`) and kept
      when it belongs to it (`Debian-` / `based`, `--with-` / `blas`): see `components.converters.dehyphenation`.
    - With `remove_running_lines=True`, running headers and footers ("Debian Reference 139 / 233", a bare page
      number) are removed from the text layer before chunking: see `components.converters.running_lines`.
    """

    def __init__(
        self,
        *,
        backend: Backend = "pypdfium2",
        ocr: OcrMode = "auto",
        ocr_language: str = "eng",
        ocr_min_chars: int = 20,
        ocr_dpi: int = 200,
        ocr_max_pixels: int = 20_000_000,
        ocr_timeout_s: float = 120,
        raise_on_failure: bool = True,
        hyphen_lexicon: str | None = "en",
        remove_running_lines: bool = False,
    ) -> None:
        """
        Create the converter.

        :param backend: text extraction library, "pypdfium2" or "pypdf".
        :param ocr: "auto" to OCR pages without a usable text layer, "off" to never OCR.
        :param ocr_language: tesseract language spec, e.g. "eng" or "eng+deu".
        :param ocr_min_chars: pages with fewer non-space characters than this are OCRed.
        :param ocr_dpi: rendering resolution for OCR (50-600).
        :param ocr_max_pixels: pages that would render to more pixels at `ocr_dpi` (posters, a hostile 8400 pt
            page) are rendered at the lower resolution that fits, so one page cannot take gigabytes and minutes.
        :param ocr_timeout_s: tesseract timeout per page, in seconds.
        :param raise_on_failure: raise ConversionError for an unreadable file (True) or log and skip it.
        :param hyphen_lexicon: the word list (a pyspellchecker language: `en`, `de`, `fr`, ...) that decides a
            line-end hyphen the document itself gives no evidence for; None: such hyphens are removed unless their
            characters say otherwise.
        :param remove_running_lines: remove the first or last line of a page when it runs through the file (a
            running header or footer with the page number); False (default) keeps every line.
        :raises ValueError: on an invalid argument.
        """
        if backend not in get_args(Backend):
            raise ValueError(f"backend must be one of {get_args(Backend)}, got {backend!r}")
        if ocr not in get_args(OcrMode):
            raise ValueError(f"ocr must be one of {get_args(OcrMode)}, got {ocr!r}")
        self.backend = backend
        self.ocr = ocr
        self.ocr_language = validate_language(ocr_language)
        self.ocr_min_chars = check_int(ocr_min_chars, "ocr_min_chars", minimum=0)
        self.ocr_dpi = check_int(ocr_dpi, "ocr_dpi", minimum=50, maximum=600)
        self.ocr_max_pixels = check_int(ocr_max_pixels, "ocr_max_pixels", minimum=10_000)
        self.ocr_timeout_s = check_positive_number(ocr_timeout_s, "ocr_timeout_s")
        self.raise_on_failure = check_bool(raise_on_failure, "raise_on_failure")
        self.hyphen_lexicon = check_lexicon(hyphen_lexicon, "hyphen_lexicon")
        self.remove_running_lines = check_bool(remove_running_lines, "remove_running_lines")

    def warm_up(self) -> None:
        """Check (once, cached) whether tesseract is available, so the first scanned page does not pay for it."""
        if self.ocr == "auto" and not tesseract_available():
            logger.warning("tesseract is not installed: scanned PDF pages will be skipped (OCR not available)")

    @component.output_types(documents=list[Document])
    def run(
        self,
        sources: list[str | Path | ByteStream],
        meta: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> dict[str, list[Document]]:
        """
        Convert PDF files to Documents, one per non-empty page.

        :param sources: file paths or ByteStreams.
        :param meta: metadata for all sources (dict) or one dict per source (list); merged with ByteStream.meta.
        :returns: {"documents": [...]}
        :raises ConversionError: a file cannot be read (only when raise_on_failure=True).
        :raises OcrUnavailableError: a file needs OCR and tesseract is missing (only when raise_on_failure=True).
        """
        documents = convert_sources(sources, meta, self._convert, raise_on_failure=self.raise_on_failure)
        return {"documents": documents}

    def _convert(self, bytestream: ByteStream, metadata: dict[str, Any], name: str) -> list[Document]:
        data = bytestream.data
        if self.backend == "pypdfium2":
            file_meta, pages, outline = self._extract_pypdfium2(data, name)
        else:
            file_meta, pages, outline = self._extract_pypdf(data, name)

        base_meta = document_meta(bytestream, metadata, file_meta)
        sections = page_sections(outline, max((number for number, _, _ in pages), default=0)) if outline else []
        documents = []
        for page_number, text, from_ocr in pages:
            page_meta = {**base_meta, "page": page_number}
            if from_ocr:
                page_meta["ocr"] = True
            if sections:
                section, parents, marks = sections[page_number - 1]
                if section:
                    page_meta["section"] = section
                if section and parents:
                    page_meta["section_parents"] = dump_marks(parents)
                if marks:
                    page_meta["section_marks"] = dump_marks(marks)
            documents.append(Document(content=text, meta=page_meta))
        if not documents:
            logger.warning("No text found in {file}", file=name)
        return documents

    # -- backends ---------------------------------------------------------------------------------------

    @staticmethod
    def _open_pypdfium2(data: bytes, name: str) -> pypdfium2.PdfDocument:
        try:
            with _PDFIUM_LOCK:
                return pypdfium2.PdfDocument(data)  # PDFium tries the empty password by itself
        except pypdfium2.PdfiumError as error:
            if getattr(error, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
                raise ConversionError(f"encrypted PDF {name}: a password is required to open it") from error
            raise ConversionError(f"corrupt or unsupported PDF {name}: {error}") from error

    def _extract_pypdfium2(
        self, data: bytes, name: str
    ) -> tuple[dict[str, Any], list[tuple[int, str, bool]], _Outline]:
        pdf = self._open_pypdfium2(data, name)
        try:
            try:
                with _PDFIUM_LOCK:
                    file_meta = _file_metadata(pdf.get_metadata_dict())
                    texts = []
                    for index in range(len(pdf)):
                        page = pdf[index]
                        try:
                            textpage = page.get_textpage()
                            try:
                                texts.append(textpage.get_text_bounded())
                            finally:
                                textpage.close()
                        finally:
                            page.close()
                    outline = _outline_pypdfium2(pdf, name)
            except pypdfium2.PdfiumError as error:
                raise ConversionError(f"corrupt PDF {name}: {error}") from error
            texts = self._clean(texts)
            # OCR (a tesseract subprocess) runs outside the lock; only rendering takes it
            pages = self._with_ocr(texts, name, lambda index: self._render(pdf, index, name))
        finally:
            with _PDFIUM_LOCK:
                pdf.close()
        return file_meta, pages, outline

    def _extract_pypdf(self, data: bytes, name: str) -> tuple[dict[str, Any], list[tuple[int, str, bool]], _Outline]:
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
                raise ConversionError(f"encrypted PDF {name}: a password is required to open it")
            file_meta = _file_metadata(reader.metadata)
            texts = [mark_line_end_hyphens(page.extract_text()) for page in reader.pages]
            outline = _outline_pypdf(reader, name)
        except ConversionError:
            raise
        except pypdf.errors.DependencyError as error:
            raise ConversionError(f"encrypted PDF {name}: cannot decrypt it with pypdf: {error}") from error
        except pypdf.errors.FileNotDecryptedError as error:
            raise ConversionError(f"encrypted PDF {name}: a password is required to open it") from error
        except _PYPDF_ERRORS as error:
            raise ConversionError(f"corrupt or unsupported PDF {name}: {error}") from error

        pdf: pypdfium2.PdfDocument | None = None

        def render(index: int) -> Image.Image:
            nonlocal pdf
            if pdf is None:
                pdf = self._open_pypdfium2(data, name)
            return self._render(pdf, index, name)

        texts = self._clean(texts)
        try:
            pages = self._with_ocr(texts, name, render)
        finally:
            if pdf is not None:
                with _PDFIUM_LOCK:
                    pdf.close()
        return file_meta, pages, outline

    def _clean(self, texts: list[str]) -> list[str]:
        """The text layer without running headers and footers, line-end hyphens resolved."""
        if self.remove_running_lines:
            texts = remove_running_lines(texts)
        return dehyphenate(texts, lexicon=self.hyphen_lexicon)

    def _render(self, pdf: pypdfium2.PdfDocument, index: int, name: str) -> Image.Image:
        try:
            with _PDFIUM_LOCK:
                page = pdf[index]
                try:
                    width, height = page.get_size()  # points
                    scale = self.ocr_dpi / 72
                    if width * height * scale * scale > self.ocr_max_pixels:
                        scale = math.sqrt(self.ocr_max_pixels / (width * height))
                        logger.debug(
                            "Page {page} of {file} is {w}x{h} pt: rendered at {dpi} dpi for OCR",
                            page=index + 1,
                            file=name,
                            w=round(width),
                            h=round(height),
                            dpi=round(scale * 72),
                        )
                    bitmap = page.render(scale=scale, grayscale=True)
                    try:
                        # convert() copies the pixels out of PDFium's buffer, so the bitmap can be freed here
                        image = bitmap.to_pil().convert("L")
                        image.info["dpi"] = (scale * 72, scale * 72)
                        return image
                    finally:
                        bitmap.close()
                finally:
                    page.close()
        except pypdfium2.PdfiumError as error:
            raise ConversionError(f"cannot render page {index + 1} of {name} for OCR: {error}") from error

    # -- OCR -----------------------------------------------------------------------------------------------

    def _with_ocr(
        self, raw_texts: list[str], name: str, render: Callable[[int], Image.Image]
    ) -> list[tuple[int, str, bool]]:
        """Return (page number, text, came from OCR) for every page with text, OCRing pages without a text layer."""
        pages: list[tuple[int, str, bool]] = []
        pages_needing_ocr: list[int] = []
        for index, raw_text in enumerate(raw_texts):
            page_number = index + 1
            text = _clean_text(raw_text)
            if self.ocr == "auto" and _visible_chars(text) < self.ocr_min_chars:
                if not tesseract_available():
                    pages_needing_ocr.append(page_number)
                    logger.warning(
                        "Skipping page {page} of {file}: it has no text layer and OCR is not available",
                        page=page_number,
                        file=name,
                    )
                    continue
                image = render(index)
                ocr_text = _clean_text(
                    ocr_image(image, language=self.ocr_language, timeout_s=self.ocr_timeout_s, dpi=image.info["dpi"][0])
                )
                if _visible_chars(ocr_text) > _visible_chars(text):
                    pages.append((page_number, ocr_text, True))
                    continue
            if text:
                pages.append((page_number, text, False))
        if not pages and pages_needing_ocr:
            raise OcrUnavailableError(f"{name} has no text layer on {len(pages_needing_ocr)} page(s) and needs OCR")
        return pages
