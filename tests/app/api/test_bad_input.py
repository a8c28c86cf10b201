"""Hostile and broken uploads: every one gets a 4xx with a reason, none a 5xx, none leaves chunks behind.

The corpus is generated here (truncated, random, renamed, bombs) or comes from other projects' test files
(pypdf's encrypted PDF); it runs against both stores.
"""

import io
import shutil
import struct
import zipfile
import zlib

import pytest


def _png_header(width: int, height: int) -> bytes:
    """A PNG with only a header: Pillow reads its size without decoding any pixel."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 0)
        + b"IEND"
        + struct.pack(">I", zlib.crc32(b"IEND"))
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bad_files(r_intro_pdf, encrypted_pdf):
    elf = open(shutil.which("true") or "/bin/true", "rb").read()
    return {
        # name: (bytes, expected status, expected error code)
        "empty.pdf": (b"", 422, "extraction_failed"),
        "truncated.pdf": (r_intro_pdf.read_bytes()[:1000], 422, "extraction_failed"),
        "random.pdf": (bytes(range(256)) * 16, 415, "unsupported_file_type"),
        "program.txt": (elf, 415, "unsupported_file_type"),
        "archive.docx": (_zip({"data/readme.bin": b"\x00" * 100}), 415, "unsupported_file_type"),
        "bomb.docx": (
            _zip({"word/document.xml": b" " * 20_000_000, "[Content_Types].xml": b"<x/>"}),
            413,
            "payload_too_large",
        ),
        "huge.png": (_png_header(40_000, 40_000), 413, "payload_too_large"),
        "encrypted.pdf": (encrypted_pdf.read_bytes(), 422, "extraction_failed"),
        "script-only.html": (
            b"<html><head><script>alert(1)</script></head><body></body></html>",
            422,
            "extraction_failed",
        ),
        "nul.csv": (b"a,b\n1,2\n\x00\x00\x00\x00", 415, "unsupported_file_type"),
    }


def test_every_bad_file_is_a_4xx_with_a_reason_and_leaves_nothing(client, bad_files):
    store = client.app.state.rag.pipelines.document_store
    for name, (data, status, code) in bad_files.items():
        before = store.count_documents()
        response = client.post("/documents/upload", files=[("files", (name, data))], data={"collection": "bad"})
        assert response.status_code == status, (name, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (name, error)
        assert error["detail"]["files"][0]["error"], name
        assert store.count_documents() == before, f"{name} left chunks behind"


def test_a_traversal_file_name_is_reduced_to_its_base_name(client):
    response = client.post(
        "/documents/upload",
        files=[("files", ("../../etc/evil.txt", b"plain words about harbours"))],
        data={"collection": "bad"},
    )
    assert response.status_code == 200
    assert response.json()["files"][0]["filename"] == "evil.txt"


def test_content_decides_the_type_not_the_name(client, r_intro_pdf):
    disguised = client.post(
        "/documents/upload",
        files=[("files", ("manual.txt", r_intro_pdf.read_bytes()[:0] + r_intro_pdf.read_bytes()))],
        data={"collection": "sniffed"},
    )
    assert disguised.status_code == 200, disguised.text
    result = disguised.json()["files"][0]
    assert result["content_type"] == "application/pdf" and result["pages"] == 113


def test_pdf_page_limit(api_settings, auth_headers, r_intro_pdf):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(api_settings.model_copy(update={"max_pdf_pages": 50})), headers=auth_headers) as limited:
        response = limited.post("/documents/upload", files=[("files", (r_intro_pdf.name, r_intro_pdf.read_bytes()))])
    assert response.status_code == 413
    assert "113 pages, more than the limit of 50" in response.json()["error"]["detail"]["files"][0]["error"]
