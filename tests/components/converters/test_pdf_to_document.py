"""PdfToDocument on real PDFs: R manuals (Debian), ocrmypdf's scans, pypdf's encrypted samples."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pypdfium2
import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ByteStream

from components.converters.errors import ConversionError, OcrUnavailableError
from components.converters.pdf_to_document import PdfToDocument, parse_pdf_date

BACKENDS = ["pypdfium2", "pypdf"]

APP_META = {
    "file_name": "upload.pdf",
    "collection": "manuals",
    "document_id": "doc-123",
    "content_hash": "sha256:abc",
    "tags": ["r", "stats"],
}


def _words(text: str) -> set[str]:
    return {word.lower() for word in re.findall(r"[A-Za-z]{5,}", text)}


# -- init / serialization -------------------------------------------------------------------------------


def test_init_defaults() -> None:
    converter = PdfToDocument()
    assert converter.backend == "pypdfium2"
    assert converter.ocr == "auto"
    assert converter.ocr_language == "eng"
    assert converter.ocr_min_chars == 20
    assert converter.ocr_dpi == 200
    assert converter.ocr_max_pixels == 20_000_000
    assert converter.ocr_timeout_s == 120
    assert converter.raise_on_failure is True
    assert converter.hyphen_lexicon == "en"
    assert converter.remove_running_lines is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backend": "pdfminer"},
        {"ocr": "always"},
        {"ocr_language": "eng; rm -rf /"},
        {"ocr_language": ""},
        {"ocr_min_chars": -1},
        {"ocr_min_chars": True},
        {"ocr_dpi": 10},
        {"ocr_dpi": 2000},
        {"ocr_max_pixels": 100},
        {"ocr_timeout_s": 0},
        {"raise_on_failure": "yes"},
        {"hyphen_lexicon": "english"},
        {"remove_running_lines": "yes"},
    ],
)
def test_init_rejects_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PdfToDocument(**kwargs)


def test_init_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        PdfToDocument("pypdf")  # type: ignore[misc]


def test_to_dict_from_dict_round_trip() -> None:
    converter = PdfToDocument(
        backend="pypdf",
        ocr="off",
        ocr_language="eng+deu",
        ocr_min_chars=5,
        ocr_dpi=300,
        ocr_max_pixels=1_000_000,
        ocr_timeout_s=30.5,
        raise_on_failure=False,
        hyphen_lexicon=None,
        remove_running_lines=True,
    )
    data = component_to_dict(converter, "converter")
    assert data == {
        "type": "components.converters.pdf_to_document.PdfToDocument",
        "init_parameters": {
            "backend": "pypdf",
            "ocr": "off",
            "ocr_language": "eng+deu",
            "ocr_min_chars": 5,
            "ocr_dpi": 300,
            "ocr_max_pixels": 1_000_000,
            "ocr_timeout_s": 30.5,
            "raise_on_failure": False,
            "hyphen_lexicon": None,
            "remove_running_lines": True,
        },
    }
    restored = component_from_dict(PdfToDocument, data, "converter")
    assert component_to_dict(restored, "converter") == data


def test_a_huge_page_is_rendered_for_ocr_within_the_pixel_budget() -> None:
    pdf = pypdfium2.PdfDocument.new()
    pdf.new_page(8400, 8400)  # ocrmypdf's hugemono.pdf page: 23333 x 23333 pixels at 200 dpi
    pdf.new_page(612, 792)
    converter = PdfToDocument(ocr_max_pixels=4_000_000)

    huge = converter._render(pdf, 0, "huge.pdf")
    letter = converter._render(pdf, 1, "letter.pdf")

    assert huge.width * huge.height <= 4_010_000 and huge.info["dpi"][0] < 20  # within rounding
    assert letter.size == (1700, 2200) and letter.info["dpi"][0] == 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("D:20221110120000Z", "2022-11-10T12:00:00+00:00"),
        ("D:20161107122451-08'00'", "2016-11-07T12:24:51-08:00"),
        ("D:20150722100404Z00'00'", "2015-07-22T10:04:04+00:00"),  # ocrmypdf's c03-29.pdf
        ("D:20220414132421+05'30", "2022-04-14T13:24:21+05:30"),
        ("D:20230120", "2023-01-20T00:00:00"),
        ("20230120164927", "2023-01-20T16:49:27"),
        ("D:2015", "2015-01-01T00:00:00"),
        ("D:20151340", None),
        ("not a date", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_pdf_date(raw: str | None, expected: str | None) -> None:
    assert parse_pdf_date(raw) == expected


# -- real files: text layer -------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("backend", BACKENDS)
def test_r_intro_one_document_per_page(backend: str, r_intro_pdf: Path) -> None:
    with pypdfium2.PdfDocument(str(r_intro_pdf)) as pdf:
        page_count = len(pdf)
    assert page_count > 100

    documents = PdfToDocument(backend=backend).run(sources=[r_intro_pdf])["documents"]

    pages = [doc.meta["page"] for doc in documents]
    assert pages == list(range(1, page_count + 1))  # R-intro has no blank page
    assert "An Introduction to R" in documents[0].content
    assert all(doc.content and doc.content.strip() for doc in documents)
    assert all("ocr" not in doc.meta for doc in documents)
    assert all("\x00" not in doc.content and "\r" not in doc.content for doc in documents)
    # CreationDate D:20230120164927Z; Title/Author are empty strings in this PDF, so they are not set
    assert documents[0].meta["created_at"] == "2023-01-20T16:49:27+00:00"
    assert "title" not in documents[0].meta
    assert documents[0].meta["file_path"] == "R-intro.pdf"


@pytest.mark.integration
def test_backends_agree_on_r_intro_text(r_intro_pdf: Path) -> None:
    by_backend = {
        backend: PdfToDocument(backend=backend, ocr="off").run(sources=[r_intro_pdf])["documents"]
        for backend in BACKENDS
    }
    pdfium_docs, pypdf_docs = by_backend["pypdfium2"], by_backend["pypdf"]
    assert len(pdfium_docs) == len(pypdf_docs)
    for index in (0, 10, 50):
        a, b = _words(pdfium_docs[index].content), _words(pypdf_docs[index].content)
        assert len(a & b) / len(a | b) > 0.8, f"page {index + 1}"


@pytest.mark.integration
@pytest.mark.parametrize("backend", BACKENDS)
def test_running_headers_are_removed_and_the_text_kept(backend: str, r_intro_pdf: Path) -> None:
    kept = PdfToDocument(backend=backend, ocr="off").run(sources=[r_intro_pdf])  # the default keeps every line
    removed = PdfToDocument(backend=backend, ocr="off", remove_running_lines=True).run(sources=[r_intro_pdf])
    kept_pages = {doc.meta["page"]: doc.content for doc in kept["documents"]}
    removed_pages = {doc.meta["page"]: doc.content for doc in removed["documents"]}
    assert kept_pages.keys() == removed_pages.keys()

    # a running header: "Chapter 7: Reading data from files 34" (chapter title, printed page number)
    header = re.compile(r"\s*Chapter \d+: [^\n]* \d+\s*\n")
    headed = [page for page, text in kept_pages.items() if header.match(text)]
    assert len(headed) > 50
    for page in headed:
        kept_lines = [line for line in kept_pages[page].splitlines() if line.strip()]
        removed_lines = [line for line in removed_pages[page].splitlines() if line.strip()]
        assert removed_lines in (kept_lines[1:], kept_lines[1:-1]), page  # the header, perhaps a footer; no more
    assert sum(removed_pages[page] != text for page, text in kept_pages.items()) > 90


@pytest.mark.integration
def test_pdfium_joins_hyphenated_line_breaks(r_exts_pdf: Path) -> None:
    documents = PdfToDocument(ocr="off").run(sources=[r_exts_pdf])["documents"]
    text = "\n".join(doc.content for doc in documents)
    assert "\x02" not in text
    assert "respectively" in text  # printed as "re-" / "spectively" across a line break


@pytest.mark.integration
def test_app_metadata_is_kept_on_every_page(r_intro_pdf: Path) -> None:
    stream = ByteStream(data=r_intro_pdf.read_bytes(), meta=dict(APP_META), mime_type="application/pdf")
    documents = PdfToDocument().run(sources=[stream], meta={"source": "debian"})["documents"]
    assert len(documents) > 100
    for document in documents:
        for key, value in APP_META.items():
            assert document.meta[key] == value
        assert document.meta["source"] == "debian"
        assert isinstance(document.meta["page"], int)
    assert len({doc.id for doc in documents}) == len(documents)


# -- encrypted / corrupt ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_user_password_pdf_opens(backend: str, empty_password_pdf: Path) -> None:
    documents = PdfToDocument(backend=backend).run(sources=[empty_password_pdf])["documents"]
    assert len(documents) == 1
    assert documents[0].content.startswith("pdf encryption test")
    assert documents[0].meta["page"] == 1
    assert documents[0].meta["author"] == "cheng"


def test_aes_empty_user_password_pdf_opens_with_pypdfium2(empty_password_aes_pdf: Path) -> None:
    documents = PdfToDocument().run(sources=[empty_password_aes_pdf])["documents"]
    assert documents[0].content.startswith("pdf encryption test")


def test_aes_pdf_with_pypdf_converts_or_explains(empty_password_aes_pdf: Path) -> None:
    """pypdf needs the optional `cryptography` package for AES: without it we get a clear ConversionError."""
    converter = PdfToDocument(backend="pypdf")
    try:
        documents = converter.run(sources=[empty_password_aes_pdf])["documents"]
    except ConversionError as error:
        assert "encrypted PDF" in str(error)
        assert "cryptography" in str(error)
    else:
        assert documents[0].content.startswith("pdf encryption test")


@pytest.mark.parametrize(
    ("backend", "fixture_name"),
    [(b, "encrypted_pdf") for b in BACKENDS] + [("pypdfium2", "encrypted_aes_pdf")],
)
def test_password_protected_pdf_raises(backend: str, fixture_name: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture_name)
    with pytest.raises(ConversionError, match="encrypted PDF"):
        PdfToDocument(backend=backend).run(sources=[path])


def test_pypdf_opens_an_aes_pdf_whose_owner_password_is_empty(encrypted_aes_pdf: Path) -> None:
    # r6-user-password.pdf has user password "asdfzxcv" but an empty owner password: pypdf (with `cryptography`,
    # a dependency since the backends milestone) opens it with the empty one, as the owner would; pdfium only tries
    # the user password and refuses (test above).
    documents = PdfToDocument(backend="pypdf").run(sources=[encrypted_aes_pdf])["documents"]
    assert documents[0].content.startswith("pdf encryption test")


@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_pdf_raises(backend: str, invalid_pdf: Path) -> None:
    with pytest.raises(ConversionError, match="corrupt") as excinfo:
        PdfToDocument(backend=backend).run(sources=[invalid_pdf])
    assert not isinstance(excinfo.value, OcrUnavailableError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_pdf_raises(backend: str, empty_password_pdf: Path) -> None:
    data = empty_password_pdf.read_bytes()
    stream = ByteStream(data=data[: len(data) // 3], meta={"file_name": "truncated.pdf"})
    with pytest.raises(ConversionError):
        PdfToDocument(backend=backend).run(sources=[stream])


def test_missing_file_raises_conversion_error(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="cannot open"):
        PdfToDocument().run(sources=[tmp_path / "nope.pdf"])


def test_raise_on_failure_false_skips_bad_files(
    invalid_pdf: Path, encrypted_pdf: Path, empty_password_pdf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    converter = PdfToDocument(raise_on_failure=False)
    with caplog.at_level(logging.WARNING):
        documents = converter.run(sources=[invalid_pdf, encrypted_pdf, empty_password_pdf])["documents"]
    assert [doc.meta["file_path"] for doc in documents] == ["r3-empty-password.pdf"]
    messages = [record.getMessage() for record in caplog.records]
    assert any("invalid.pdf" in message for message in messages)
    assert any("r4-user-password.pdf" in message for message in messages)


def test_meta_list_is_zipped_with_sources(empty_password_pdf: Path, empty_password_aes_pdf: Path) -> None:
    documents = PdfToDocument().run(sources=[empty_password_pdf, empty_password_aes_pdf], meta=[{"n": 1}, {"n": 2}])[
        "documents"
    ]
    assert [doc.meta["n"] for doc in documents] == [1, 2]
    with pytest.raises(ValueError):
        PdfToDocument().run(sources=[empty_password_pdf], meta=[{"n": 1}, {"n": 2}])


# -- OCR -------------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("backend", BACKENDS)
def test_scanned_pdf_is_ocred(backend: str, linn_pdf: Path, linn_txt: Path) -> None:
    documents = PdfToDocument(backend=backend).run(sources=[linn_pdf])["documents"]
    assert len(documents) == 1
    document = documents[0]
    assert document.meta["page"] == 1
    assert document.meta["ocr"] is True
    assert document.meta["created_at"] == "2016-01-19T12:38:47+00:00"
    expected = _words(linn_txt.read_text(encoding="utf-8"))
    found = _words(document.content)
    assert "LinnSequencer" in document.content
    assert len(expected & found) / len(expected) > 0.8


@pytest.mark.integration
@pytest.mark.slow
def test_mixed_pdf_ocrs_only_pages_without_text(multipage_pdf: Path) -> None:
    documents = PdfToDocument().run(sources=[multipage_pdf])["documents"]
    by_page = {doc.meta["page"]: doc for doc in documents}
    assert 4 in by_page and "ocr" not in by_page[4].meta  # the page with a text layer is not OCRed
    assert by_page[1].meta["ocr"] is True
    assert "Miss Watson" in by_page[1].content  # Huckleberry Finn scan
    assert "throne of England" in by_page[5].content


def test_ocr_off_returns_no_documents_for_a_scan(linn_pdf: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        documents = PdfToDocument(ocr="off").run(sources=[linn_pdf])["documents"]
    assert documents == []
    assert any("No text found" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scan_without_tesseract_raises_ocr_unavailable(backend: str, linn_pdf: Path, tesseract_missing: None) -> None:
    with pytest.raises(OcrUnavailableError, match="OCR not available"):
        PdfToDocument(backend=backend).run(sources=[linn_pdf])


def test_scan_without_tesseract_skipped_when_not_raising(
    linn_pdf: Path, tesseract_missing: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        documents = PdfToDocument(raise_on_failure=False).run(sources=[linn_pdf])["documents"]
    assert documents == []
    assert any("OCR not available" in record.getMessage() for record in caplog.records)


def test_mixed_pdf_without_tesseract_keeps_text_pages(
    multipage_pdf: Path, tesseract_missing: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        documents = PdfToDocument().run(sources=[multipage_pdf])["documents"]
    assert [doc.meta["page"] for doc in documents] == [4]
    skipped = [record.getMessage() for record in caplog.records if "Skipping page" in record.getMessage()]
    assert len(skipped) == 5


def test_warm_up_warns_without_tesseract(tesseract_missing: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        PdfToDocument().warm_up()
    assert any("OCR not available" in record.getMessage() for record in caplog.records)


# -- pipeline --------------------------------------------------------------------------------------------

PIPELINE_YAML = """
components:
  router:
    type: haystack.components.routers.file_type_router.FileTypeRouter
    init_parameters:
      mime_types: ["application/pdf"]
  converter:
    type: components.converters.pdf_to_document.PdfToDocument
    init_parameters:
      backend: pypdf
      ocr: "off"
connections:
  - sender: router.application/pdf
    receiver: converter.sources
"""


def test_in_yaml_pipeline(empty_password_pdf: Path) -> None:
    pipeline = Pipeline.loads(PIPELINE_YAML, allowed_modules=["components"])
    stream = ByteStream(data=empty_password_pdf.read_bytes(), meta=dict(APP_META), mime_type="application/pdf")
    result = pipeline.run({"router": {"sources": [stream]}})
    documents: list[Document] = result["converter"]["documents"]
    assert len(documents) == 1
    assert documents[0].meta["page"] == 1
    assert documents[0].meta["document_id"] == "doc-123"
    assert "pdf encryption test" in documents[0].content


def test_concurrent_conversions_in_threads(empty_password_pdf: Path, empty_password_aes_pdf: Path) -> None:
    """PDFium is not thread-safe: the converter serializes its calls, so worker threads can share it."""
    from concurrent.futures import ThreadPoolExecutor

    converter = PdfToDocument()
    sources = [empty_password_pdf, empty_password_aes_pdf] * 20
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda path: converter.run(sources=[path])["documents"], sources))
    assert all(docs[0].content.startswith("pdf encryption test") for docs in results)


@pytest.mark.parametrize("backend", BACKENDS)
def test_info_dictionary_with_indirect_values(backend: str, empty_password_pdf: Path) -> None:
    """Title/Author stored as indirect objects (common in producer-rewritten PDFs) are resolved, not repr'd."""
    import io

    import pypdf
    from pypdf.generic import NameObject, TextStringObject

    writer = pypdf.PdfWriter()
    for page in pypdf.PdfReader(empty_password_pdf).pages:
        writer.add_page(page)
    writer.add_metadata({"/Author": "Jane Doe", "/CreationDate": "D:20200101120000+01'00'"})
    # writer.metadata is a copy: reach the real Info dictionary (private API, test only)
    writer._info.get_object()[NameObject("/Title")] = writer._add_object(TextStringObject("Indirect Title"))
    buffer = io.BytesIO()
    writer.write(buffer)

    [document] = PdfToDocument(backend=backend).run(sources=[ByteStream(buffer.getvalue())])["documents"]
    assert document.meta["title"] == "Indirect Title"
    assert document.meta["author"] == "Jane Doe"
    assert document.meta["created_at"] == "2020-01-01T12:00:00+01:00"


@pytest.mark.integration
@pytest.mark.parametrize("backend", BACKENDS)
def test_outline_gives_each_page_its_section_and_marks(backend: str, r_intro_pdf: Path) -> None:
    documents = PdfToDocument(backend=backend).run(sources=[r_intro_pdf])["documents"]
    by_page = {doc.meta["page"]: doc for doc in documents}
    assert "section" not in by_page[1].meta and "section_marks" not in by_page[1].meta  # before the first bookmark
    page = by_page[10]
    assert page.meta["section"] == "Using R interactively"  # the last bookmark of page 9
    chapter = ["1 Introduction and preliminaries"]
    assert json.loads(page.meta["section_parents"]) == chapter  # the bookmark above it
    assert json.loads(page.meta["section_marks"]) == [
        {"heading": "An introductory session", "parents": chapter},
        {"heading": "Getting help with functions and features", "parents": chapter},
    ]
    assert "Getting help with functions and features" in page.content  # the heading is a line of the page
    assert by_page[11].meta["section"] == "Getting help with functions and features"
    nested = json.loads(by_page[30].meta["section_marks"])[-1]  # a third-level bookmark
    assert nested == {"heading": "Matrix multiplication", "parents": ["5 Arrays and matrices", "Matrix facilities"]}


def test_an_unreadable_outline_is_ignored(
    monkeypatch: pytest.MonkeyPatch, empty_password_pdf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_self: object, *args: object, **kwargs: object) -> object:
        raise pypdfium2.PdfiumError("bad outline")

    monkeypatch.setattr(pypdfium2.PdfDocument, "get_toc", broken)
    documents = PdfToDocument().run(sources=[empty_password_pdf])["documents"]
    assert documents and all("section_marks" not in doc.meta for doc in documents)
    assert "outline" in caplog.text
