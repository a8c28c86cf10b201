"""Fixtures giving tests real third-party documents: the .corpus/ folder and the Debian doc packages.

`scripts/fetch_test_corpus.sh` fills `.corpus/` (sdist test files of ocrmypdf, pypdf and python-docx, CSVs from
vega_datasets, a pandoc-made DOCX and a Pillow-made TIFF) and checks the Debian packages listed in
`scripts/apt-packages.txt` (R manuals, Python 3.11 HTML docs, tesseract, pandoc). A missing file FAILS the test
(it is never skipped), so a CI that forgot to fetch the corpus goes red.

Registered with the other shared fixtures by `app.testing.plugin`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import PROJECT_ROOT

REPO_ROOT = PROJECT_ROOT
CORPUS_DIR = REPO_ROOT / ".corpus"
FETCH_HINT = "run scripts/fetch_test_corpus.sh first"
APT_HINT = (
    "run scripts/fetch_test_corpus.sh first (it needs the Debian packages of scripts/apt-packages.txt: "
    "apt-get install -y --no-install-recommends $(cat scripts/apt-packages.txt))"
)

R_MANUALS = Path("/usr/share/R/doc/manual")
PYTHON_DOC_HTML = Path("/usr/share/doc/python3.11/html")
NODEJS_API_DOCS = Path("/usr/share/doc/nodejs/api")


def _require(path: Path, hint: str = FETCH_HINT) -> Path:
    if not path.is_file() or path.stat().st_size == 0:
        pytest.fail(f"missing test corpus file {path}: {hint}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The repository's .corpus/ folder (fails the test when it was not fetched)."""
    if not CORPUS_DIR.is_dir():
        pytest.fail(f"{CORPUS_DIR} does not exist: {FETCH_HINT}", pytrace=False)
    return CORPUS_DIR


# -- PDF -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def r_intro_pdf() -> Path:
    """'An Introduction to R' (Debian r-doc-pdf): a 100+ page born-digital PDF with a text layer."""
    return _require(R_MANUALS / "R-intro.pdf", APT_HINT)


@pytest.fixture(scope="session")
def r_exts_pdf() -> Path:
    """'Writing R Extensions' (Debian r-doc-pdf): ~240 pages, used for backend timings."""
    return _require(R_MANUALS / "R-exts.pdf", APT_HINT)


@pytest.fixture(scope="session")
def linn_pdf(corpus_dir: Path) -> Path:
    """ocrmypdf's linn.pdf: a one-page scan without any text layer (needs OCR)."""
    return _require(corpus_dir / "ocrmypdf" / "linn.pdf")


@pytest.fixture(scope="session")
def linn_txt(corpus_dir: Path) -> Path:
    """ocrmypdf's reference transcription of linn.pdf."""
    return _require(corpus_dir / "ocrmypdf" / "linn.txt")


@pytest.fixture(scope="session")
def multipage_pdf(corpus_dir: Path) -> Path:
    """ocrmypdf's multipage.pdf: 6 pages, only page 4 has a text layer, the others are scans or blank."""
    return _require(corpus_dir / "ocrmypdf" / "multipage.pdf")


@pytest.fixture(scope="session")
def encrypted_pdf(corpus_dir: Path) -> Path:
    """pypdf's r4-user-password.pdf: RC4-128 encrypted, needs the user password 'asdfzxcv'."""
    return _require(corpus_dir / "pypdf" / "r4-user-password.pdf")


@pytest.fixture(scope="session")
def encrypted_aes_pdf(corpus_dir: Path) -> Path:
    """pypdf's r6-user-password.pdf: AES-256 encrypted, needs the user password."""
    return _require(corpus_dir / "pypdf" / "r6-user-password.pdf")


@pytest.fixture(scope="session")
def empty_password_pdf(corpus_dir: Path) -> Path:
    """pypdf's r3-empty-password.pdf: RC4 encrypted with an empty user password (opens without one)."""
    return _require(corpus_dir / "pypdf" / "r3-empty-password.pdf")


@pytest.fixture(scope="session")
def empty_password_aes_pdf(corpus_dir: Path) -> Path:
    """pypdf's r6-empty-password.pdf: AES-256 with an empty user password (pypdf needs `cryptography` for it)."""
    return _require(corpus_dir / "pypdf" / "r6-empty-password.pdf")


@pytest.fixture(scope="session")
def invalid_pdf(corpus_dir: Path) -> Path:
    """ocrmypdf's invalid.pdf: a '%PDF-1.3' header followed by plain text."""
    return _require(corpus_dir / "ocrmypdf" / "invalid.pdf")


# -- images --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def png_file(corpus_dir: Path) -> Path:
    """ocrmypdf's typewriter.png: a typewritten Dutch recipe ('Linzensoep a la Waterman')."""
    return _require(corpus_dir / "ocrmypdf" / "typewriter.png")


@pytest.fixture(scope="session")
def tiff_file(corpus_dir: Path) -> Path:
    """A 2-frame TIFF made by the fetch script: frame 1 = typewriter.png, frame 2 = linn.png."""
    return _require(corpus_dir / "generated" / "typewriter-linn.tiff")


# -- office / web / text ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docx_file(corpus_dir: Path) -> Path:
    """python-docx's blk-paras-and-tables.docx: paragraphs and tables, core property author 'Steve Canny'."""
    return _require(corpus_dir / "python-docx" / "blk-paras-and-tables.docx")


@pytest.fixture(scope="session")
def docx_coreprops_file(corpus_dir: Path) -> Path:
    """python-docx's doc-coreprops.docx: no body text, but every core property set (title 'Title')."""
    return _require(corpus_dir / "python-docx" / "doc-coreprops.docx")


@pytest.fixture(scope="session")
def docx_no_coreprops_file(corpus_dir: Path) -> Path:
    """python-docx's doc-no-coreprops.docx: no core-properties part (python-docx then reports defaults)."""
    return _require(corpus_dir / "python-docx" / "doc-no-coreprops.docx")


@pytest.fixture(scope="session")
def pandoc_docx_file(corpus_dir: Path) -> Path:
    """The Python 3.11 'General Python FAQ' converted to DOCX by pandoc (title, author, created set)."""
    return _require(corpus_dir / "generated" / "python-faq.docx")


@pytest.fixture(scope="session")
def html_file() -> Path:
    """The Python 3.11 'General Python FAQ' HTML page (Debian python3.11-doc, Sphinx with navigation)."""
    return _require(PYTHON_DOC_HTML / "faq" / "general.html", APT_HINT)


@pytest.fixture(scope="session")
def markdown_file(corpus_dir: Path) -> Path:
    """A real Markdown file: Node.js's API docs when Debian's nodejs-doc is installed, else pypdf's README.md."""
    candidate = NODEJS_API_DOCS / "path.md"
    if candidate.is_file():
        return candidate
    return _require(corpus_dir / "pypdf" / "README.md")


@pytest.fixture(scope="session")
def text_file(linn_txt: Path) -> Path:
    """A real plain-text file (ocrmypdf's linn.txt)."""
    return linn_txt


@pytest.fixture(scope="session")
def csv_file(corpus_dir: Path) -> Path:
    """vega_datasets' seattle-weather.csv: 1461 rows, 6 columns, comma-separated."""
    return _require(corpus_dir / "vega" / "seattle-weather.csv")


@pytest.fixture(scope="session")
def csv_airports_file(corpus_dir: Path) -> Path:
    """vega_datasets' airports.csv: 3376 rows of 7 columns with free-text names."""
    return _require(corpus_dir / "vega" / "airports.csv")


# -- tesseract -----------------------------------------------------------------------------------------


@pytest.fixture
def tesseract_missing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pretend tesseract is not installed (shutil.which finds nothing); resets the cached availability check."""
    import shutil

    from components.converters.ocr import tesseract_available

    real_which = shutil.which

    def which(cmd: str, mode: int = os.F_OK | os.X_OK, path: str | None = None) -> str | None:
        if Path(str(cmd)).name == "tesseract":
            return None
        return real_which(cmd, mode, path)

    monkeypatch.setattr(shutil, "which", which)
    tesseract_available.cache_clear()
    yield
    tesseract_available.cache_clear()
