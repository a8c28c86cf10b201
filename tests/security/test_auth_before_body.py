"""Issue 13, finding 2: a request without a valid key is refused from its headers, before any body is read.

Red team: without a key, a 190 MB JSON body blocked the event loop ~10 s and added ~1 GB RSS before the 401; invalid
JSON got 422 instead of 401; multipart bodies were spooled to /tmp before auth. JSON bodies are kept small too.
"""

from __future__ import annotations

import json
import os
import tempfile

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.api_keys import KeyStore

MB = 1024 * 1024
BOUNDARY = "red-team-boundary"
QUERY = {"question": "When is the lamp lit?", "collection": "alpha", "generate": False}
NO_VALID_KEY = {
    "no key": {},
    "forged key": {"Authorization": "Bearer rag_000000000000_" + "A" * 43},
    "malformed X-API-Key": {"X-API-Key": "not-a-key"},
    "basic auth": {"Authorization": "Basic YWRtaW46YWRtaW4="},
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _assert_unauthorized(result) -> None:
    assert result.status == 401, result.body[:300]
    assert json.loads(result.body)["error"]["code"] == "unauthorized"
    assert result.headers["www-authenticate"] == "Bearer"
    assert result.headers["connection"] == "close"  # the unread body is not drained on a kept-alive connection


@pytest.mark.parametrize("credentials", NO_VALID_KEY)
def test_unauthenticated_190mb_json_body_is_401_before_it_is_read(app_client, asgi, credentials):
    headers = {"content-type": "application/json", "content-length": str(190 * MB), **NO_VALID_KEY[credentials]}
    result = asgi(app_client, "POST", "/query", headers, total_bytes=190 * MB)
    _assert_unauthorized(result)
    assert result.pulled == 0, f"the server read {result.bytes_pulled} body bytes before refusing"


def test_unauthenticated_streamed_50mb_json_without_content_length_is_401_unread_and_rss_stays_flat(app_client, asgi):
    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    before = _rss_bytes()
    result = asgi(app_client, "POST", "/v1/chat/completions", headers, total_bytes=50 * MB)
    grown = _rss_bytes() - before
    _assert_unauthorized(result)
    assert result.pulled == 0
    assert grown < 16 * MB, f"RSS grew {grown / MB:.1f} MiB for a refused request"


def test_unauthenticated_multipart_upload_is_401_and_nothing_is_spooled(app_client, asgi):
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="payroll.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    sent = 0

    def chunk() -> bytes:  # one multipart part of 20 MB: Starlette spools parts over 1 MB to a temporary file
        nonlocal sent
        sent += 1
        return part + b"z" * (64 * 1024 - len(part)) if sent == 1 else b"z" * (64 * 1024)

    temp_dir = tempfile.gettempdir()
    listed = set(os.listdir(temp_dir))
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", "content-length": str(20 * MB)}
    result = asgi(app_client, "POST", "/documents/upload", headers, total_bytes=20 * MB, chunk=chunk)
    _assert_unauthorized(result)
    assert result.pulled == 0
    assert set(os.listdir(temp_dir)) - listed == set()


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_invalid_json_without_a_key_is_401_not_422(app_client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    for body in (b"{not json", b'{"question": 42}', b""):
        response = app_client.post("/query", content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
    assert app_client.post("/keys", content=b"[", headers={"X-API-Key": "rag_bad"}).status_code == 401


def test_unknown_paths_need_a_key_before_anything_else(app_client, asgi, admin):
    result = asgi(app_client, "POST", "/no-such-route", {"content-type": "application/json"}, total_bytes=4 * MB)
    _assert_unauthorized(result)
    assert result.pulled == 0
    assert app_client.get("/no-such-route", headers=admin).status_code == 404


def test_public_endpoints_demo_page_and_openapi_need_no_key(app_client):
    for path in ("/health", "/ready", "/metrics", "/", "/static/app.js", "/openapi.json"):
        assert app_client.get(path).status_code == 200, path


def test_with_a_valid_key_the_same_routes_behave_as_before(app_client, admin):
    upload = app_client.post(
        "/documents/upload",
        files=[("files", ("alpha.txt", b"The lamp is lit at dusk by the lighthouse keeper.", "text/plain"))],
        data={"collection": "alpha"},
        headers=admin,
    )
    assert upload.status_code == 200, upload.text
    assert app_client.post("/query", json=QUERY, headers=admin).status_code == 200
    invalid = app_client.post("/query", content=b"{not json", headers={"content-type": "application/json", **admin})
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_request"
    assert app_client.post("/query", json={"question": 42}, headers=admin).status_code == 422


def test_a_json_body_over_max_json_kb_with_a_valid_key_is_413_before_it_is_read(app_client, asgi, admin):
    declared = {"content-type": "application/json", "content-length": str(2 * MB), **admin}
    result = asgi(app_client, "POST", "/query", declared, total_bytes=2 * MB)
    assert result.status == 413 and result.pulled == 0
    error = json.loads(result.body)["error"]
    assert error["code"] == "payload_too_large"
    assert error["message"] == "request body larger than 1 MiB; only multipart file uploads may be larger"
    streamed = asgi(app_client, "POST", "/query", {"content-type": "application/json", **admin}, total_bytes=8 * MB)
    assert streamed.status == 413
    assert streamed.pulled == 17  # 16 x 64 KiB is exactly the limit: the 17th chunk passes it, nothing more is read
    no_type = asgi(app_client, "POST", "/query", admin, total_bytes=8 * MB)  # parsed as JSON without a content type
    assert no_type.status == 413 and no_type.pulled == 17


def test_a_second_content_type_header_does_not_lift_the_json_limit(app_client, asgi, admin):
    headers = [("content-type", "application/json"), ("content-type", "multipart/form-data; boundary=x")]
    result = asgi(app_client, "POST", "/query", admin, total_bytes=8 * MB, extra_headers=headers)
    assert result.status == 413 and result.pulled == 17  # the app would parse it as JSON: the JSON limit holds


def test_the_json_limit_is_a_setting(security_settings, admin):
    small = security_settings.model_copy(update={"max_json_kb": 16})
    with TestClient(create_app(small), headers=admin) as client:
        refused = client.post("/query", json={**QUERY, "question": "q" * 20_000})  # a 400 once parsed
        assert refused.status_code == 413
        assert refused.json()["error"]["message"].startswith("request body larger than 16 KiB")
        assert client.post("/query", json=QUERY).status_code == 200


def test_over_its_rate_limit_a_key_gets_429_before_the_body_is_read(security_settings, admin, asgi):
    limited = security_settings.model_copy(update={"rate_limit": "1/minute"})
    with TestClient(create_app(limited), headers=admin) as client:
        assert client.get("/collections").status_code == 200
        headers = {"content-type": "application/json", **admin}
        result = asgi(client, "POST", "/query", headers, total_bytes=4 * MB)
        assert result.status == 429 and result.pulled == 0
        assert json.loads(result.body)["error"]["code"] == "rate_limited"
        assert int(result.headers["retry-after"]) >= 1


def test_the_key_is_looked_up_once_per_request(app_client, admin, monkeypatch):
    keys: KeyStore = app_client.app.state.rag.keys
    calls = []
    original = keys.authenticate

    def counting(presented: str):
        calls.append(presented)
        return original(presented)

    monkeypatch.setattr(keys, "authenticate", counting)
    assert app_client.post("/query", json=QUERY, headers=admin).status_code == 200
    assert app_client.get("/collections", headers=admin).status_code == 200
    assert len(calls) == 2
