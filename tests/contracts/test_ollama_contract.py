"""The `ollama` profile end to end through the real app, against a local server replaying recorded Ollama responses.

The replay server (`app.testing.fakes.FakeOllama` on 127.0.0.1) answers `/api/embed` with deterministic bag-of-words
vectors and `/api/chat` with the recorded answers (`recordings/ollama/`, see its README for where the shapes come
from). It keeps every request, so the tests check what the profile sends: model names, options and the numbered
passages.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.fakes import FakeOllama

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "pipelines" / "profiles" / "ollama"
RECORDINGS = Path(__file__).resolve().parent / "recordings" / "ollama"
DIMENSION = 768

DOCUMENT = (
    "Acme kettle manual.\n\nWarranty: the warranty of the Acme kettle lasts 24 months from the date of purchase.\n"
)
QUESTION = "How long does the warranty of the Acme kettle last?"


def embed(text: str) -> list[float]:
    """A deterministic 768-d vector: hashed lower-case words, L2-normalized (shared words -> high cosine)."""
    vector = [0.0] * DIMENSION
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSION] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _recording(name: str) -> Any:
    return json.loads((RECORDINGS / name).read_text(encoding="utf-8"))


@pytest.fixture
def ollama_replay() -> Iterator[FakeOllama]:
    """The fake Ollama (`app.testing.fakes`) answering with the recordings and this module's embeddings."""
    with FakeOllama(embed=embed, recordings=RECORDINGS) as replay:
        yield replay


@pytest.fixture
def client(ollama_replay: FakeOllama, tmp_path: Path) -> Iterator[TestClient]:
    """The app on a copy of the ollama profile whose URLs point at the replay server."""
    profile = tmp_path / "profile"
    profile.mkdir()
    for name in ("indexing.yml", "query.yml"):
        text = (PROFILE / name).read_text(encoding="utf-8")
        assert "http://localhost:11434" in text
        (profile / name).write_text(text.replace("http://localhost:11434", ollama_replay.url), encoding="utf-8")
    app = create_app(Settings(data_dir=tmp_path / "data", pipelines_dir=profile, dev_mode=True))
    with TestClient(app) as test_client:
        upload = test_client.post(
            "/documents/upload",
            files=[("files", ("kettle.txt", DOCUMENT.encode(), "text/plain"))],
            data={"collection": "c1"},
        )
        assert upload.status_code == 200, upload.text
        assert [f["status"] for f in upload.json()["files"]] == ["indexed"]
        yield test_client


def _sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_indexing_embeds_the_chunks_with_the_profile_model(client: TestClient, ollama_replay: FakeOllama) -> None:
    embeds = ollama_replay.bodies("/api/embed")

    assert embeds, "the indexing pipeline never called /api/embed"
    assert {body["model"] for body in embeds} == {"nomic-embed-text"}
    embedded = " ".join(text for body in embeds for text in body["input"])
    assert "lasts 24 months" in embedded
    listing = client.get("/documents", params={"collection": "c1"}).json()
    assert [d["filename"] for d in listing["documents"]] == ["kettle.txt"]


def test_query_answers_with_the_replayed_reply_and_its_sources(client: TestClient, ollama_replay: FakeOllama) -> None:
    response = client.post("/query", json={"question": QUESTION, "collection": "c1"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == _recording("chat.json")["message"]["content"]
    assert body["refused"] is False
    assert body["sources"] and body["sources"][0]["filename"] == "kettle.txt"
    assert "24 months" in body["sources"][0]["text"]
    assert body["sources"][0]["cited"] is True
    assert any(QUESTION in body_["input"] for body_ in ollama_replay.bodies("/api/embed"))
    (chat,) = ollama_replay.bodies("/api/chat")
    assert chat["model"] == "llama3.2:3b"
    assert chat["stream"] is False
    assert chat["options"]["temperature"] == 0.0
    assert [m["role"] for m in chat["messages"]] == ["system", "user"]
    user = chat["messages"][1]["content"]
    assert "[1] (from kettle.txt)" in user
    assert "lasts 24 months" in user
    assert QUESTION in user


def test_streamed_query_relays_the_replayed_tokens(client: TestClient, ollama_replay: FakeOllama) -> None:
    response = client.post("/query/stream", json={"question": QUESTION, "collection": "c1"})

    assert response.status_code == 200, response.text
    events = _sse(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert events[0][1]["sources"][0]["filename"] == "kettle.txt"
    chunks = [c["message"]["content"] for c in _recording("chat_stream.json") if c["message"]["content"]]
    assert [data["text"] for kind, data in events if kind == "token"] == chunks
    done = events[-1][1]
    assert done["answer"] == "".join(chunks)
    assert done["refused"] is False
    assert done["cited"] == [1]
    (chat,) = ollama_replay.bodies("/api/chat")
    assert chat["stream"] is True
    assert "lasts 24 months" in chat["messages"][1]["content"]


def test_unrelated_question_is_refused_without_calling_the_llm(client: TestClient, ollama_replay: FakeOllama) -> None:
    response = client.post("/query", json={"question": "Which port does the database listen on?", "collection": "c1"})

    assert response.status_code == 200, response.text
    assert response.json()["refused"] is True
    assert ollama_replay.bodies("/api/chat") == []


def test_other_collections_see_nothing(client: TestClient, ollama_replay: FakeOllama) -> None:
    response = client.post("/query", json={"question": QUESTION, "collection": "c2", "generate": False})

    assert response.status_code == 200, response.text
    assert response.json()["sources"] == []
    assert ollama_replay.bodies("/api/chat") == []
