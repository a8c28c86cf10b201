"""Hostile and broken uploads: every one gets a 4xx with a reason, none a 5xx, none leaves chunks behind.

The corpus is generated here (truncated, random, renamed, bombs) or comes from other projects' test files
(pypdf's encrypted PDFs, the malformed and hostile PDFs of the pypdf and ocrmypdf sdists in `.corpus/hostile/`,
fetched by scripts/fetch_test_corpus.sh); it runs against both stores.
"""

import io
import shutil
import struct
import zipfile
import zlib

import pytest

# .corpus/hostile/ (scripts/fetch_test_corpus.sh): files a password protects, the rest (malformed, huge pages...)
HOSTILE_ENCRYPTED = (
    "encrypted-file.pdf",
    "crazyones-encrypted-256.pdf",
    "libreoffice-writer-password.pdf",
    "r2-user-password.pdf",
    "r4-aes-user-password.pdf",
    "r5-user-password.pdf",
    "r6-both-passwords.pdf",
    "r6-cleartext-metadata.pdf",
)
HOSTILE_OTHERS = (
    "encrypted_doc_no_id.pdf",
    "r4-aes-v2-no-key-length.pdf",
    "issue-297.pdf",
    "outlines-with-invalid-destinations.pdf",
    "lzw_decoder_table_overflow.bin",
    "invalid.pdf",
    "enormous.pdf",
    "hugemono.pdf",
    "jbig2_baddevicen.pdf",
    "livecycle.pdf",
    "negzero.pdf",
    "no_contents.pdf",
    "docinfo_latin1_key.pdf",
)


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


@pytest.mark.integration
def test_hostile_sdist_files_are_indexed_or_a_4xx_with_a_reason_never_partial(client, corpus_dir):
    """Some "broken" PDFs legitimately parse (PDFium is tolerant); none may answer 5xx or leave partial chunks."""
    store = client.app.state.rag.pipelines.document_store
    outcomes: dict[str, tuple[int, str]] = {}
    for name in HOSTILE_ENCRYPTED + HOSTILE_OTHERS:
        path = corpus_dir / "hostile" / name
        assert path.is_file(), f"{path} missing: run scripts/fetch_test_corpus.sh"
        before = store.count_documents()
        response = client.post(
            "/documents/upload", files=[("files", (name, path.read_bytes()))], data={"collection": "hostile"}
        )
        if response.status_code == 200:
            result = response.json()["files"][0]
            assert result["status"] == "indexed" and result["chunks"] > 0, (name, result)
            assert store.count_documents() == before + result["chunks"], name
            outcomes[name] = (200, "indexed")
        else:
            assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
            error = response.json()["error"]
            reason = error["detail"]["files"][0]["error"]
            assert reason and error["detail"]["files"][0]["error_code"] == error["code"], name
            assert store.count_documents() == before, f"{name} left chunks behind"
            outcomes[name] = (response.status_code, reason)

    for name in HOSTILE_ENCRYPTED:
        status, reason = outcomes[name]
        assert status == 422 and "password is required" in reason, (name, outcomes[name])
    assert outcomes["lzw_decoder_table_overflow.bin"][0] == 415
    assert outcomes["invalid.pdf"][0] == 422
    for name in ("livecycle.pdf", "no_contents.pdf"):  # pages without content: the reason says so on every store
        assert outcomes[name] == (422, f"{name}: no text could be extracted"), outcomes[name]


def test_filters_whose_values_do_not_fit_the_stored_metadata_are_a_400(client):
    """Metadata of one key with several types (a number, a word, a list): no comparison may reach a 5xx."""
    for name, tags in (("n5.txt", '{"n": 5}'), ("nfive.txt", '{"n": "five"}'), ("nlist.txt", '{"n": [1, "a"]}')):
        response = client.post(
            "/documents/upload",
            files=[("files", (name, f"harbour notes {name}".encode()))],
            data={"collection": "mixed", "metadata": tags},
        )
        assert response.status_code == 200, response.text
    for filters in (
        {"field": "meta.n", "operator": ">", "value": 3},
        {"field": "meta.n", "operator": "==", "value": 5},
        {"field": "meta.n", "operator": "!=", "value": True},
        {"field": "meta.n", "operator": "in", "value": ["a", 1, True]},
        {"field": "meta.n", "operator": "<", "value": "x"},
        {"field": "content", "operator": "==", "value": 3},
        {"field": "id", "operator": ">", "value": 3},
        {"field": "n", "operator": "==", "value": 1},
        {"field": "meta.n", "operator": "==", "value": {"a": 1}},
        {"field": "meta.n", "operator": "==", "value": 10**30},
    ):
        response = client.post(
            "/query", json={"question": "harbour", "collection": "mixed", "filters": filters, "generate": False}
        )
        assert response.status_code in (200, 400), (filters, response.status_code, response.text)
        if response.status_code == 400:
            assert response.json()["error"]["code"] == "invalid_input", filters


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
