"""Tesseract OCR helpers shared by the PDF and image converters (not a component).

Tesseract is called directly as a subprocess (the image is piped in as PNG on stdin) rather than through
`pytesseract.image_to_string`, so that:

- the subprocess gets `OMP_THREAD_LIMIT=1` in its own environment (tesseract's default OpenMP threading
  is several times slower on a 2-core machine, and mutating `os.environ` would not be thread-safe);
- no temporary files are written.

`pytesseract` is only used to check that the installed tesseract answers with a version.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess

import pytesseract
from haystack import logging
from PIL import Image

from components.converters.errors import ConversionError, OcrUnavailableError

logger = logging.getLogger(__name__)

_LANGUAGE_RE = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")


@functools.cache
def tesseract_available() -> bool:
    """
    Tell whether a working `tesseract` binary is on the PATH.

    The answer is cached for the process; call `tesseract_available.cache_clear()` after installing it
    (or in tests that monkeypatch `shutil.which`).
    """
    if shutil.which("tesseract") is None:
        return False
    try:
        version = pytesseract.get_tesseract_version()
    except (pytesseract.TesseractNotFoundError, OSError, subprocess.SubprocessError) as error:
        logger.warning("tesseract is on the PATH but does not run: {error}", error=error)
        return False
    logger.debug("Found tesseract {version}", version=version)
    return True


def validate_language(language: str) -> str:
    """Check a tesseract language spec such as "eng" or "eng+deu"; return it or raise ValueError."""
    if not isinstance(language, str) or not _LANGUAGE_RE.fullmatch(language):
        raise ValueError(f"Invalid OCR language {language!r}: expected tesseract codes like 'eng' or 'eng+deu'.")
    return language


def ocr_image(image: Image.Image, *, language: str, timeout_s: float, dpi: int | None = None) -> str:
    """
    Run tesseract on a PIL image and return the recognized text (stripped; may be empty).

    :param image: the image (any mode; it is converted to 8-bit grayscale).
    :param language: tesseract language spec, e.g. "eng" or "eng+deu".
    :param timeout_s: the subprocess is killed after this many seconds.
    :param dpi: resolution of the image when known (rendered PDF pages); tesseract estimates it otherwise.
    :raises OcrUnavailableError: tesseract is not installed.
    :raises ConversionError: tesseract failed, timed out, or the language data is missing.
    """
    validate_language(language)
    if not tesseract_available():
        raise OcrUnavailableError()
    tesseract = shutil.which("tesseract")
    if tesseract is None:  # uninstalled since the cached check
        tesseract_available.cache_clear()
        raise OcrUnavailableError()

    buffer = io.BytesIO()
    gray = image if image.mode == "L" else image.convert("L")
    gray.save(buffer, format="PNG", compress_level=1)

    command = [tesseract, "stdin", "stdout", "-l", language]
    if dpi is not None:
        command += ["--dpi", str(int(dpi))]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        completed = subprocess.run(  # fixed argv, no shell
            command, input=buffer.getvalue(), capture_output=True, env=env, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise ConversionError(f"OCR timed out after {timeout_s} s") from error
    except OSError as error:
        raise ConversionError(f"could not run tesseract: {error}") from error

    stderr = completed.stderr.decode("utf-8", errors="replace").strip()
    if completed.returncode != 0:
        raise ConversionError(f"tesseract failed (exit code {completed.returncode}, language {language!r}): {stderr}")
    return completed.stdout.decode("utf-8", errors="replace").replace("\x0c", "").strip()
