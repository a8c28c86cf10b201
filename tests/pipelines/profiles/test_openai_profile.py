"""The openai profile against a real OpenAI-compatible server: llama.cpp's (`python -m llama_cpp.server`) on
127.0.0.1 with the packaged SmolLM2 model, through the real app, streaming and not."""

import json

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.profiles import edit_yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def client(llama_server, tmp_path_factory, make_tiny_profile, html_file):
    root = tmp_path_factory.mktemp("openai-profile")
    pipelines = make_tiny_profile(root / "pipelines", profile="openai")

    def short_answers(query):
        assert query["components"]["llm"]["type"].endswith("OpenAIChatGenerator")
        query["components"]["llm"]["init_parameters"]["generation_kwargs"]["max_tokens"] = 24

    edit_yaml(pipelines / "query.yml", short_answers)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "sk-local-test")
        patch.setenv("OPENAI_BASE_URL", llama_server.base_url)  # api_base_url is null in the shipped YAML
        with TestClient(
            create_app(Settings(data_dir=root / "data", pipelines_dir=pipelines, dev_mode=True))
        ) as test_client:
            upload = test_client.post(
                "/documents/upload",
                files=[("files", (html_file.name, html_file.read_bytes()))],
                data={"collection": "oa"},
            )
            assert upload.status_code == 200, upload.text
            yield test_client


def test_answers_through_the_llama_cpp_server(client, llama_server):
    before = llama_server.requests_seen()
    body = client.post("/query", json={"question": "What is Python?", "collection": "oa", "top_k": 2}).json()
    assert body["answer"] and not body["refused"]
    assert body["sources"] and body["sources"][0]["filename"] == "general.html"
    assert llama_server.requests_seen() == before + 1


def test_streams_tokens_from_the_llama_cpp_server(client, llama_server):
    before = llama_server.requests_seen()
    with client.stream("POST", "/query/stream", json={"question": "What is Python?", "collection": "oa"}) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    blocks = [b for b in text.split("\n\n") if b.strip()]
    kinds = [b.split("\n")[0].removeprefix("event: ") for b in blocks]
    assert kinds[0] == "sources" and kinds[-1] == "done", kinds
    assert kinds.count("token") >= 2  # several deltas, not one final blob
    done = json.loads(blocks[-1].split("\n")[1].removeprefix("data: "))
    tokens = "".join(json.loads(b.split("\n")[1].removeprefix("data: "))["text"] for b in blocks if "event: token" in b)
    assert done["answer"].strip().startswith(tokens.strip()[:10])
    assert llama_server.requests_seen() == before + 1
