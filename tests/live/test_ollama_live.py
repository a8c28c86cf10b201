"""The `ollama` profile against a real Ollama server (OLLAMA_URL, models pulled): index, ask, stream, clean up."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("OLLAMA_URL"), reason="set OLLAMA_URL (e.g. http://localhost:11434)"),
]

PROFILE = Path(__file__).resolve().parents[2] / "pipelines" / "profiles" / "ollama"
DOCUMENT = b"Acme kettle manual.\n\nThe warranty of the Acme kettle lasts 24 months from the date of purchase.\n"


def test_ollama_profile_indexes_answers_and_cleans_up(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    profile.mkdir()
    for name in ("indexing.yml", "query.yml"):
        text = (PROFILE / name).read_text().replace("http://localhost:11434", os.environ["OLLAMA_URL"].rstrip("/"))
        if model := os.environ.get("OLLAMA_CHAT_MODEL"):
            text = text.replace("model: llama3.2:3b", f"model: {model}")
        (profile / name).write_text(text)
    collection = f"live-{uuid.uuid4().hex[:8]}"
    app = create_app(Settings(data_dir=tmp_path / "data", pipelines_dir=profile, dev_mode=True))

    with TestClient(app) as client:
        upload = client.post(
            "/documents/upload",
            files=[("files", ("kettle.txt", DOCUMENT, "text/plain"))],
            data={"collection": collection},
        )
        assert upload.status_code == 200, upload.text
        question = {"question": "How long does the Acme kettle warranty last?", "collection": collection}
        try:
            answer = client.post("/query", json=question).json()
            assert answer["sources"] and answer["sources"][0]["filename"] == "kettle.txt"
            if not answer["refused"]:
                assert "24" in answer["answer"]

            stream = client.post("/query/stream", json=question)
            events = [frame.split("\n", 1)[0].removeprefix("event: ") for frame in stream.text.strip().split("\n\n")]
            assert events[0] == "sources" and events[-1] == "done"
            done = json.loads(stream.text.strip().split("\n\n")[-1].split("data: ", 1)[1])
            assert done["answer"]
        finally:
            assert client.delete(f"/collections/{collection}").status_code in (200, 204)
        assert client.post("/query", json={**question, "generate": False}).json()["sources"] == []
