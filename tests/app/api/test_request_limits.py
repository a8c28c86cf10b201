"""Request limits: bodies over RAG_MAX_REQUEST_MB (413 before they are read), files per upload, question length,
top_k bounds, and a scanned PDF when OCR is off."""

import pytest
from fastapi.testclient import TestClient

from app.api.middleware import BodySizeLimitMiddleware
from app.main import create_app
from app.settings import Settings
from app.testing.api import admin_headers
from app.testing.profiles import edit_yaml


@pytest.fixture(scope="module")
def store_profile():
    """The limit sits in front of the routes: one store is enough."""
    return "default"


@pytest.fixture(scope="module")
def limited(api_settings, auth_headers):
    with TestClient(create_app(api_settings.model_copy(update={"max_request_mb": 1})), headers=auth_headers) as client:
        yield client


def test_declared_length_over_the_limit_is_refused_at_once(limited):
    response = limited.post("/documents/upload", files=[("files", ("big.txt", b"x" * (2 * 1024 * 1024)))])
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "payload_too_large",
        "message": "request body larger than 1 MiB",
        "detail": None,
    }
    assert response.headers["X-Request-ID"]  # still logged and counted like any request


def test_streamed_body_over_the_limit_is_413_not_the_apps_own_error(limited):
    def chunks():
        for _ in range(64):  # 64 x 64 KiB = 4 MiB, no Content-Length
            yield b"y" * 65536

    response = limited.post("/query", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413  # FastAPI alone would answer 400 for the interrupted body
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_middleware_stops_reading_once_past_the_limit():
    pulled = 0

    async def receive():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"y" * 65536, "more_body": True}  # an endless upload

    sent = []

    async def send(message):
        sent.append(message)

    async def reads_everything(scope, receive, send):
        while (await receive()).get("more_body"):
            pass

    middleware = BodySizeLimitMiddleware(reads_everything, max_bytes=1024 * 1024)
    await middleware({"type": "http", "headers": []}, receive, send)
    assert pulled == 17  # 16 chunks are exactly 1 MiB; the 17th passes the limit and nothing more is read
    assert sent[0]["status"] == 413


def test_bodies_under_the_limit_pass(limited, text_file):
    response = limited.post("/documents/upload", files=[("files", (text_file.name, text_file.read_bytes()))])
    assert response.status_code == 200


def test_question_length_and_top_k_bounds_come_from_settings(api_settings, auth_headers):
    settings = api_settings.model_copy(update={"max_question_chars": 200, "max_top_k": 7})
    with TestClient(create_app(settings), headers=auth_headers) as client:
        ok = client.post("/query", json={"question": "q" * 200, "generate": False, "top_k": 7})
        assert ok.status_code == 200, ok.text
        long = client.post("/query", json={"question": "q" * 201, "generate": False})
        assert long.status_code == 400 and "longer than 200 characters" in long.json()["error"]["message"]
        assert client.post("/query", json={"question": "q", "generate": False, "top_k": 8}).status_code == 400


def test_more_files_than_allowed_is_a_400(api_settings, auth_headers, text_file):
    with TestClient(create_app(api_settings.model_copy(update={"max_files_per_upload": 2})), headers=auth_headers) as c:
        files = [("files", (f"{n}.txt", text_file.read_bytes() + str(n).encode(), "text/plain")) for n in range(3)]
        refused = c.post("/documents/upload", files=files, data={"collection": "many"})
        assert refused.status_code == 400 and "at most 2 files" in refused.json()["error"]["message"]
        assert c.get("/documents", params={"collection": "many"}).json()["total"] == 0


def test_an_image_only_pdf_without_ocr_is_a_422_with_a_reason(tmp_path, make_tiny_profile, linn_pdf):
    pipelines = make_tiny_profile(tmp_path / "pipelines")

    def ocr_off(indexing):
        indexing["components"]["pdf_converter"]["init_parameters"]["converter"]["init_parameters"]["ocr"] = "off"

    edit_yaml(pipelines / "indexing.yml", ocr_off)
    settings = Settings(data_dir=tmp_path / "data", pipelines_dir=pipelines)
    with TestClient(create_app(settings), headers=admin_headers(settings.data_dir)) as client:
        response = client.post("/documents/upload", files=[("files", (linn_pdf.name, linn_pdf.read_bytes()))])
        assert response.status_code == 422
        result = response.json()["error"]["detail"]["files"][0]
        assert result["error_code"] == "extraction_failed" and "no text could be extracted" in result["error"]
        assert client.app.state.rag.pipelines.document_store.count_documents() == 0
