"""Per-file parse time limit and extracted-text limit, through the API, on both stores.

The text converter of a tiny profile is swapped for a fault-injecting one that spins the CPU on files starting with
`#FAULT`, as a parser stuck on a hostile file would; RAG_PARSE_TIMEOUT_S is 2 s and RAG_MAX_TEXT_CHARS 2000.
"""

import time

import pytest

from app.settings import Settings
from app.testing.profiles import edit_yaml

TIMEOUT_S = 2
MAX_CHARS = 2000
STUCK = ("stuck.txt", b"#FAULT this parser never finishes")


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory, make_tiny_profile, store_profile):
    root = tmp_path_factory.mktemp("limits")
    pipelines = make_tiny_profile(root / "pipelines", profile=store_profile)

    def faulty_text_converter(indexing):
        indexing["components"]["text_converter"]["init_parameters"]["converter"] = {
            "type": "app.testing.fault_injecting_converter.FaultInjectingConverter",
            "init_parameters": {"fault": "spin", "seconds": 120},
        }

    edit_yaml(pipelines / "indexing.yml", faulty_text_converter)
    with pytest.MonkeyPatch.context() as patch:  # Settings.export_env() writes these; restored afterwards
        patch.setenv("RAG_PARSE_TIMEOUT_S", str(TIMEOUT_S))
        patch.setenv("RAG_MAX_TEXT_CHARS", str(MAX_CHARS))
        yield Settings(
            data_dir=root / "data", pipelines_dir=pipelines, parse_timeout_s=TIMEOUT_S, max_text_chars=MAX_CHARS
        )


def _count(client):
    return client.app.state.rag.pipelines.document_store.count_documents()


def test_a_stuck_parser_fails_its_file_only_and_the_service_keeps_working(client):
    before = _count(client)
    started = time.monotonic()
    response = client.post(
        "/documents/upload",
        files=[
            ("files", STUCK),
            ("files", ("notes.md", b"# Harbours\n\nThe harbour master keeps the tide tables.")),
            ("files", ("plain.txt", b"Lighthouses are painted in bands so ships can tell them apart.")),
        ],
        data={"collection": "limits"},
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 200, response.text
    stuck, notes, plain = response.json()["files"]
    assert stuck["status"] == "failed" and stuck["error_code"] == "parse_timeout"
    assert f"longer than {TIMEOUT_S} s" in stuck["error"]
    assert notes["status"] == "indexed" and plain["status"] == "indexed"  # plain.txt: parsed by the new worker
    assert elapsed < TIMEOUT_S + 15
    assert _count(client) == before + notes["chunks"] + plain["chunks"]


def test_a_lone_stuck_file_is_a_422_parse_timeout_leaving_nothing(client):
    before = _count(client)
    response = client.post("/documents/upload", files=[("files", STUCK)], data={"collection": "limits"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "parse_timeout"
    assert "took longer than" in error["detail"]["files"][0]["error"]
    assert _count(client) == before
    assert client.get("/health").status_code == 200


def test_too_much_extracted_text_is_a_413_before_embedding(client):
    before = _count(client)
    text = ("A line of the text bomb that repeats. " * 60).encode()  # ~2,300 characters
    response = client.post("/documents/upload", files=[("files", ("bomb.md", text))], data={"collection": "limits"})

    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert f"more than the limit of {MAX_CHARS:,}" in error["detail"]["files"][0]["error"]
    assert _count(client) == before
