"""TesseractImageToDocument on real scans from ocrmypdf's test resources (PNG, and a 2-frame TIFF made from them)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
from pathlib import Path

import pytest
from haystack import Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ByteStream
from PIL import Image

from components.converters import ocr as ocr_module
from components.converters.errors import ConversionError, OcrUnavailableError
from components.converters.tesseract_image_to_document import TesseractImageToDocument

# words of the typewritten Dutch recipe in typewriter.png
TYPEWRITER_WORDS = ["Linzensoep", "Waterman", "linzen", "liter", "water", "uien", "boter", "melk", "kerrie"]


def test_init_defaults() -> None:
    converter = TesseractImageToDocument()
    assert (converter.language, converter.timeout_s, converter.raise_on_failure) == ("eng", 120, True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"language": "eng deu"},
        {"language": "../../etc"},
        {"language": 3},
        {"timeout_s": 0},
        {"timeout_s": -1},
        {"timeout_s": "60"},
        {"raise_on_failure": None},
    ],
)
def test_init_rejects_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TesseractImageToDocument(**kwargs)


def test_to_dict_from_dict_round_trip() -> None:
    converter = TesseractImageToDocument(language="eng+nld", timeout_s=30, raise_on_failure=False)
    data = component_to_dict(converter, "converter")
    assert data == {
        "type": "components.converters.tesseract_image_to_document.TesseractImageToDocument",
        "init_parameters": {"language": "eng+nld", "timeout_s": 30, "raise_on_failure": False},
    }
    assert component_to_dict(component_from_dict(TesseractImageToDocument, data, "converter"), "converter") == data


# -- real files -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_png_is_ocred(png_file: Path) -> None:
    documents = TesseractImageToDocument().run(sources=[png_file])["documents"]
    assert len(documents) == 1
    document = documents[0]
    assert document.meta["ocr"] is True
    assert "page" not in document.meta  # a PNG is not a paged format
    assert document.meta["file_path"] == "typewriter.png"
    found = [word for word in TYPEWRITER_WORDS if word in document.content]
    assert len(found) >= len(TYPEWRITER_WORDS) - 1, found


@pytest.mark.integration
def test_jpeg_bytestream_keeps_app_metadata(png_file: Path) -> None:
    buffer = io.BytesIO()
    with Image.open(png_file) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
    meta = {"file_name": "recipe.jpg", "collection": "scans", "document_id": "d1", "content_hash": "h", "tags": ["x"]}
    stream = ByteStream(data=buffer.getvalue(), meta=dict(meta), mime_type="image/jpeg")
    documents = TesseractImageToDocument().run(sources=[stream], meta={"lang": "nl"})["documents"]
    assert len(documents) == 1
    assert {key: documents[0].meta[key] for key in meta} == meta
    assert documents[0].meta["lang"] == "nl"
    assert "Linzensoep" in documents[0].content


@pytest.mark.integration
@pytest.mark.slow
def test_multi_frame_tiff_gives_one_document_per_frame(tiff_file: Path, linn_txt: Path) -> None:
    documents = TesseractImageToDocument().run(sources=[tiff_file])["documents"]
    assert [doc.meta["page"] for doc in documents] == [1, 2]
    assert all(doc.meta["ocr"] is True for doc in documents)
    assert "Linzensoep" in documents[0].content
    assert "LinnSequencer" in documents[1].content
    assert "MIDI" in documents[1].content and "MIDI" in linn_txt.read_text(encoding="utf-8")


@pytest.mark.integration
def test_blank_image_gives_no_document(caplog: pytest.LogCaptureFixture) -> None:
    buffer = io.BytesIO()
    Image.new("L", (400, 300), color=255).save(buffer, format="PNG")
    with caplog.at_level(logging.WARNING):
        documents = TesseractImageToDocument().run(sources=[ByteStream(buffer.getvalue())])["documents"]
    assert documents == []
    assert any("no text" in record.getMessage() for record in caplog.records)


def test_unreadable_image_raises(invalid_pdf: Path) -> None:
    with pytest.raises(ConversionError, match="unreadable image") as excinfo:
        TesseractImageToDocument().run(sources=[invalid_pdf])
    assert not isinstance(excinfo.value, OcrUnavailableError)


def test_unreadable_image_raises_even_without_tesseract(invalid_pdf: Path, tesseract_missing: None) -> None:
    with pytest.raises(ConversionError, match="unreadable image"):
        TesseractImageToDocument().run(sources=[invalid_pdf])


@pytest.mark.integration
def test_truncated_png_raises(png_file: Path) -> None:
    data = png_file.read_bytes()
    with pytest.raises(ConversionError, match="corrupt image"):
        TesseractImageToDocument().run(sources=[ByteStream(data[: len(data) // 2], meta={"file_name": "cut.png"})])


def test_unreadable_image_skipped_when_not_raising(invalid_pdf: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        documents = TesseractImageToDocument(raise_on_failure=False).run(sources=[invalid_pdf])["documents"]
    assert documents == []
    assert any("invalid.pdf" in record.getMessage() for record in caplog.records)


@pytest.mark.integration
def test_missing_language_data_raises(png_file: Path) -> None:
    with pytest.raises(ConversionError, match="tesseract failed"):
        TesseractImageToDocument(language="zzz").run(sources=[png_file])


# -- tesseract missing ------------------------------------------------------------------------------------


def test_missing_tesseract_raises_ocr_unavailable(png_file: Path, tesseract_missing: None) -> None:
    with pytest.raises(OcrUnavailableError, match="OCR not available: install tesseract-ocr"):
        TesseractImageToDocument().run(sources=[png_file])


def test_missing_tesseract_skipped_when_not_raising(
    png_file: Path, tesseract_missing: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        documents = TesseractImageToDocument(raise_on_failure=False).run(sources=[png_file])["documents"]
    assert documents == []
    assert any("OCR not available" in record.getMessage() for record in caplog.records)


def test_tesseract_available_follows_which(monkeypatch: pytest.MonkeyPatch) -> None:
    ocr_module.tesseract_available.cache_clear()
    try:
        monkeypatch.setattr("shutil.which", lambda *_args, **_kwargs: None)
        assert ocr_module.tesseract_available() is False
        with pytest.raises(OcrUnavailableError):
            ocr_module.ocr_image(Image.new("L", (10, 10)), language="eng", timeout_s=5)
    finally:
        ocr_module.tesseract_available.cache_clear()


@pytest.mark.integration
def test_ocr_image_runs_tesseract_single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen_env: dict[str, str] = {}
    real_run = subprocess.run

    def spy(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        seen_env.update(kwargs["env"])  # type: ignore[arg-type]
        return real_run(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(ocr_module.subprocess, "run", spy)
    monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    assert ocr_module.ocr_image(Image.new("L", (100, 50), 255), language="eng", timeout_s=30) == ""
    assert seen_env["OMP_THREAD_LIMIT"] == "1"
    assert "OMP_THREAD_LIMIT" not in os.environ  # only the subprocess's environment is changed


@pytest.mark.integration
def test_ocr_timeout_raises(png_file: Path) -> None:
    with Image.open(png_file) as image, pytest.raises(ConversionError, match="timed out"):
        ocr_module.ocr_image(image, language="eng", timeout_s=0.01)


# -- pipeline --------------------------------------------------------------------------------------------

PIPELINE_YAML = """
components:
  router:
    type: haystack.components.routers.file_type_router.FileTypeRouter
    init_parameters:
      mime_types: ["image/png", "image/jpeg", "image/tiff"]
  ocr:
    type: components.converters.tesseract_image_to_document.TesseractImageToDocument
    init_parameters:
      language: eng
      timeout_s: 60
connections:
  - sender: router.image/png
    receiver: ocr.sources
"""


@pytest.mark.integration
def test_in_yaml_pipeline(png_file: Path) -> None:
    pipeline = Pipeline.loads(PIPELINE_YAML, allowed_modules=["components"])
    stream = ByteStream(png_file.read_bytes(), meta={"file_name": "typewriter.png"}, mime_type="image/png")
    documents = pipeline.run({"router": {"sources": [stream]}})["ocr"]["documents"]
    assert len(documents) == 1
    assert documents[0].meta["file_name"] == "typewriter.png"
    assert "Linzensoep" in documents[0].content
