"""Image converter: OCR of PNG / JPEG / TIFF (and other Pillow-readable) images with tesseract."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from haystack import Document, component, logging
from haystack.dataclasses import ByteStream
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from components.converters.errors import ConversionError, OcrUnavailableError
from components.converters.ocr import ocr_image, tesseract_available, validate_language
from components.converters.sources import convert_sources, document_meta
from components.validation import check_bool, check_positive_number

logger = logging.getLogger(__name__)

# Formats whose frames are pages; other formats (animated GIF/PNG/WebP) are read as their first frame only.
_PAGED_FORMATS = frozenset({"TIFF", "MPO"})


@component
class TesseractImageToDocument:
    """
    OCRs images into Documents with tesseract.

    PNG, JPEG, TIFF (anything Pillow reads). A multi-frame TIFF gives one Document per frame with meta
    `page` (1-based; single-frame TIFFs get `page=1` too); every Document has meta `ocr=True`. Frames
    where OCR finds no text produce no Document. JPEG EXIF orientation is applied before OCR.

    Missing tesseract raises `OcrUnavailableError` ("OCR not available: install tesseract-ocr ..."),
    an unreadable image raises `ConversionError` (with `raise_on_failure=False` both are logged and skipped).
    """

    def __init__(self, *, language: str = "eng", timeout_s: float = 120, raise_on_failure: bool = True) -> None:
        """
        Create the converter.

        :param language: tesseract language spec, e.g. "eng" or "eng+deu".
        :param timeout_s: tesseract timeout per image frame, in seconds.
        :param raise_on_failure: raise for an unreadable image (True) or log a warning and skip it.
        :raises ValueError: on an invalid argument.
        """
        self.language = validate_language(language)
        self.timeout_s = check_positive_number(timeout_s, "timeout_s")
        self.raise_on_failure = check_bool(raise_on_failure, "raise_on_failure")

    def warm_up(self) -> None:
        """Check (once, cached) whether tesseract is installed; warn early when it is not."""
        if not tesseract_available():
            logger.warning("tesseract is not installed: images cannot be converted (OCR not available)")

    @component.output_types(documents=list[Document])
    def run(
        self,
        sources: list[str | Path | ByteStream],
        meta: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> dict[str, list[Document]]:
        """
        OCR images into Documents.

        :param sources: file paths or ByteStreams.
        :param meta: metadata for all sources (dict) or one dict per source (list); merged with ByteStream.meta.
        :returns: {"documents": [...]}
        :raises OcrUnavailableError: tesseract is missing (only when raise_on_failure=True).
        :raises ConversionError: an image cannot be read or OCR fails (only when raise_on_failure=True).
        """
        documents = convert_sources(sources, meta, self._convert, raise_on_failure=self.raise_on_failure)
        return {"documents": documents}

    def _convert(self, bytestream: ByteStream, metadata: dict[str, Any], name: str) -> list[Document]:
        base_meta = document_meta(bytestream, metadata)
        documents = []
        try:
            with Image.open(io.BytesIO(bytestream.data)) as image:
                # after Image.open, so that a file that is not an image is reported as such even without tesseract
                if not tesseract_available():
                    raise OcrUnavailableError(f"cannot OCR the image {name}")
                paged = image.format in _PAGED_FORMATS
                frames = ImageSequence.Iterator(image) if paged else [image]
                for index, frame in enumerate(frames):
                    prepared = ImageOps.exif_transpose(frame) if index == 0 and not paged else frame
                    text = ocr_image(prepared, language=self.language, timeout_s=self.timeout_s)
                    if not text:
                        continue
                    frame_meta = {**base_meta, "ocr": True}
                    if paged:
                        frame_meta["page"] = index + 1
                    documents.append(Document(content=text, meta=frame_meta))
        except ConversionError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError) as error:
            raise ConversionError(f"unreadable image {name}: {error}") from error
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            # truncated/corrupt data surfaces while decoding (OSError "image file is truncated", SyntaxError...)
            raise ConversionError(f"corrupt image {name}: {error}") from error
        if not documents:
            logger.warning("OCR found no text in {file}", file=name)
        return documents
